"""``manage.py seed_demo``: load the 邻鲜超市 demo chain from ``retail/demo_data.py``.

Idempotent: rows are matched on their codes (usernames for staff) and rewritten only where
they differ from the demo data, so a re-run restores edited rows and otherwise changes nothing.
"""

import os
from collections import Counter
from dataclasses import asdict
from itertools import count
from typing import Any, TypeVar

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Model

from retail import demo_data
from retail.models import SKU, Category, Product, StaffRole, Store
from retail.services import staff_role_assign
from retail.validators import gtin_check_digit

# "69" is GS1 China; "2026" stands in for a company prefix, leaving 6 digits per SKU.
BARCODE_PREFIX = "692026"

Role = StaffRole.Role
M = TypeVar("M", bound=Model)


def demo_barcode(sku_number: int) -> str:
    """The EAN-13 of the ``sku_number``-th demo SKU: the same number on every run."""
    body = f"{BARCODE_PREFIX}{sku_number:06d}"
    return f"{body}{gtin_check_digit(body)}"


def staff_suffix(store_code: str) -> str:
    return store_code.lower().replace("-", "_")


class DemoSeeder:
    def __init__(self, password: str) -> None:
        self.password = password
        self.seeded = Counter[str]()  # demo rows by kind, for the summary
        self.rows = Counter[str]()  # "created" and "updated" rows, for the summary
        self.logins: list[tuple[str, str, Store | None]] = []
        self._password_hash = ""
        self._password_matches: dict[str, bool] = {}

    def upsert(self, model: type[M], lookup: dict[str, Any], values: dict[str, Any]) -> M:
        """Make the row found by ``lookup`` hold ``values``. An unchanged row is not saved,
        so a re-run leaves even ``updated_at`` alone."""
        instance = model._default_manager.filter(**lookup).first()
        if instance is None:
            instance = model(**lookup)
            self.rows["created"] += 1
        elif all(getattr(instance, field) == value for field, value in values.items()):
            return instance
        else:
            self.rows["updated"] += 1
        for field, value in values.items():
            setattr(instance, field, value)
        instance.full_clean()
        instance.save()
        return instance

    def seed(self) -> None:
        stores = self.seed_stores()
        leaves = self.seed_categories()
        self.seed_catalogue(leaves)
        self.seed_staff(stores)

    def seed_stores(self) -> dict[str, Store]:
        stores = {}
        for demo in demo_data.STORES:
            values = asdict(demo)
            code = values.pop("code")
            del values["manager"], values["clerk"]  # staff, seeded as users
            stores[code] = self.upsert(Store, {"code": code}, {**values, "active": True})
            self.seeded[demo.kind] += 1
        return stores

    def seed_categories(self) -> dict[str, Category]:
        """Both levels; returns the leaves, which products hang off, by code."""
        leaves = {}
        for top_position, (code, name, children) in enumerate(demo_data.CATEGORIES, start=1):
            top = self.upsert(
                Category,
                {"code": code},
                {"name": name, "parent_id": None, "sort_order": top_position * 10, "active": True},
            )
            self.seeded["category"] += 1 + len(children)
            for position, (leaf_code, leaf_name) in enumerate(children, start=1):
                leaves[leaf_code] = self.upsert(
                    Category,
                    {"code": leaf_code},
                    {
                        "name": leaf_name,
                        "parent_id": top.pk,
                        "sort_order": position * 10,
                        "active": True,
                    },
                )
        return leaves

    def seed_catalogue(self, leaves: dict[str, Category]) -> None:
        product_numbers, sku_numbers = count(1), count(1)
        for leaf_code, products in demo_data.CATALOGUE.items():
            for brand, title, unit, description, variants in products:
                product = self.upsert(
                    Product,
                    {"code": f"P{next(product_numbers):04d}"},
                    {
                        # Chinese shelf labels lead with the brand.
                        "name": f"{brand} {title}",
                        "category_id": leaves[leaf_code].pk,
                        "brand": brand,
                        "unit": unit,
                        "description": description,
                        "active": True,
                    },
                )
                self.seeded["product"] += 1
                self.seeded["sku"] += len(variants)
                for variant_number, (attributes, price_fen) in enumerate(variants, start=1):
                    self.upsert(
                        SKU,
                        {"code": f"{product.code}-{variant_number:02d}"},
                        {
                            "product_id": product.pk,
                            "barcode": demo_barcode(next(sku_numbers)),
                            "attributes": attributes,
                            "price_fen": price_fen,
                            "active": True,
                        },
                    )

    def seed_staff(self, stores: dict[str, Store]) -> None:
        self.seed_login(demo_data.HQ_ADMIN_USERNAME, demo_data.HQ_ADMIN_NAME, Role.HQ_ADMIN, None)
        for demo in demo_data.STORES:
            store, suffix = stores[demo.code], staff_suffix(demo.code)
            self.seed_login(f"mgr_{suffix}", demo.manager, Role.STORE_MANAGER, store)
            self.seed_login(f"clerk_{suffix}", demo.clerk, Role.CLERK, store)

    def seed_login(
        self, username: str, name: demo_data.PersonName, role: str, store: Store | None
    ) -> None:
        existing = User.objects.filter(username=username).first()
        last_name, first_name = name
        user = self.upsert(
            User,
            {"username": username},
            {
                "last_name": last_name,
                "first_name": first_name,
                "password": self.password_hash_for(existing),
                "is_active": True,
                "is_staff": True,
                # HQ's rights come from its role, as they would for a real HQ account.
                "is_superuser": False,
            },
        )
        # A demo login holds exactly its demo role: a role edited in the admin is put back,
        # and the one-role-per-store constraint cannot trip over the old one.
        stale = StaffRole.objects.filter(user=user).exclude(role=role, store=store)
        self.rows["updated"] += stale.delete()[0]
        if not StaffRole.objects.filter(user=user, role=role, store=store).exists():
            StaffRole(user=user, role=role, store=store).full_clean()
            staff_role_assign(user=user, role=role, store=store)
            self.rows["created"] += 1
        self.logins.append((username, role, store))

    def password_hash_for(self, user: User | None) -> str:
        """The user's stored hash if it already matches the demo password, else a new one.

        A PBKDF2 hash or check takes about half a second, so all demo users share one hash
        and each distinct stored hash is checked once: a run costs a second, not twenty.
        """
        if user is not None:
            if user.password not in self._password_matches:
                self._password_matches[user.password] = user.check_password(self.password)
            if self._password_matches[user.password]:
                return user.password
        if not self._password_hash:
            self._password_hash = make_password(self.password)
        return self._password_hash


class Command(BaseCommand):
    help = "Fill the database with the 邻鲜超市 demo chain: stores, catalogue and staff logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            default=demo_data.DEFAULT_PASSWORD,
            help="Password of every demo login (default: %(default)s).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the one-line summary.")

    def handle(self, *args: Any, password: str, quiet: bool, **options: Any) -> None:
        seeder = DemoSeeder(password)
        with transaction.atomic():
            seeder.seed()

        seeded, rows = seeder.seeded, seeder.rows
        self.stdout.write(
            self.style.SUCCESS(
                f"{demo_data.BRAND} demo: {seeded['store']} stores, {seeded['warehouse']} "
                f"warehouse, {seeded['category']} categories, {seeded['product']} products, "
                f"{seeded['sku']} SKUs, {len(seeder.logins)} staff logins "
                f"({rows['created']} created, {rows['updated']} updated)."
            )
        )
        if quiet:
            return
        # Store names last: their Chinese characters are double width and would skew columns.
        self.stdout.write("\nDemo logins:")
        self.stdout.write(f"  {'username':<16}{'role':<15}{'password':<20}store")
        for username, role, store in seeder.logins:
            where = str(store) if store else "HQ (all stores)"
            self.stdout.write(f"  {username:<16}{role:<15}{password:<20}{where}")
        port = os.environ.get("DEMO_PORT", "8000")
        self.stdout.write(f"\nAdmin: http://127.0.0.1:{port}/admin/")
