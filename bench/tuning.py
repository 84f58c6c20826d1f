"""Web server tuning: the same shop load against several gunicorn and database-connection
settings, in one run, each beside its own trivial endpoint.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python bench/tuning.py
        [--shoppers 32] [--seconds 10] [--rounds 2] [--configs sync3,gthread2x4,...]

Seed and load are bench/shop_load.py's (the demo chain, stock at SH001, a token per shopper, a
scratch database ``<name>_shopbench``), with a Redis server of the run's own as the cache (rate
limits), as in production. For each configuration gunicorn is started, ``GET /health/live`` is
hammered for 3 s (that configuration's ceiling), then ``--shoppers`` client threads run the
shop mix for ``--seconds``: each request, at random, a catalogue page (60 %), a product (30 %)
or two SKUs put in the cart and a pickup checkout (10 %, the three calls timed as one
operation). Configurations are run in
turn, ``--rounds`` times over (A B C ... A B C), so a change of the machine's load falls on all
of them; the figures are the medians over the rounds.

Configurations (``--configs``, all by default):

* ``sync3``: 3 sync workers, ``CONN_MAX_AGE`` 60 (what the Dockerfile and docker-compose.yml
  ran before this bench);
* ``sync5``: 5 sync workers (gunicorn's advice, 2 × CPUs + 1);
* ``gthread2x4``: 2 workers × 4 threads (the other benches' server);
* ``gthread2x4_conn0``: the same, a new database connection per request (``CONN_MAX_AGE`` 0);
* ``gthread3x4``: 3 workers × 4 threads;
* ``gthread2x8``: 2 workers × 8 threads.

It prints a table (mix requests per second, p50 / p99 per operation, the ratio of the mix to
the configuration's trivial endpoint, and to ``sync3``'s mix) and one JSON line, and exits 1
on any 5xx. Figures and their meaning: docs/performance.md.
"""

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flash_sale import POSTGRES_SCHEMES, ROOT, RedisServer, free_port, stop, wait_until_up
from shop_load import load, operations, prepare

CONFIGS = {
    "sync3": {"worker_class": "sync", "workers": 3, "threads": 1, "conn_max_age": 60},
    "sync5": {"worker_class": "sync", "workers": 5, "threads": 1, "conn_max_age": 60},
    "gthread2x4": {"worker_class": "gthread", "workers": 2, "threads": 4, "conn_max_age": 60},
    "gthread2x4_conn0": {"worker_class": "gthread", "workers": 2, "threads": 4, "conn_max_age": 0},
    "gthread3x4": {"worker_class": "gthread", "workers": 3, "threads": 4, "conn_max_age": 60},
    "gthread2x8": {"worker_class": "gthread", "workers": 2, "threads": 8, "conn_max_age": 60},
}
BASELINE = "sync3"
MIX = (("catalogue", 60), ("product", 30), ("checkout", 10))
TRIVIAL_SECONDS = 3


def start(config: dict, env: dict, port: int, log) -> subprocess.Popen:
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "retail.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--worker-class", config["worker_class"],
         "--workers", str(config["workers"]), "--threads", str(config["threads"]),
         "--backlog", "2048", "--log-level", "warning"],
        cwd=ROOT, env={**env, "CONN_MAX_AGE": str(config["conn_max_age"])},
        start_new_session=True, stdout=log, stderr=log,
    )  # fmt: skip
    wait_until_up(f"http://127.0.0.1:{port}/health/live", "gunicorn", server)
    return server


def measure(config: dict, env: dict, data: dict, args, log) -> dict:
    port = free_port()
    server = start(config, env, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        calls = operations(base, data)
        trivial = load(
            "trivial", calls["trivial"], clients=args.shoppers, seconds=TRIVIAL_SECONDS,
            tokens=data["tokens"],
        )  # fmt: skip
        names = [name for name, _ in MIX]
        weights = [weight for _, weight in MIX]
        timed: dict[str, list[float]] = {name: [] for name in names}

        def mixed(session, state) -> int:
            name = state["random"].choices(names, weights)[0]
            if name == "checkout" and not state.get("cart_store"):
                session.put(f"{base}/api/shop/v1/cart/store/", json={"store": data["store"]})
                state["cart_store"] = True
            began = time.perf_counter()
            status = calls[name](session, state)
            timed[name].append(time.perf_counter() - began)  # list.append is atomic
            return status

        mix = load("mix", mixed, clients=args.shoppers, seconds=args.seconds, tokens=data["tokens"])
    finally:
        stop(server)
    per_operation = {}
    for name, latencies in timed.items():
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        per_operation[name] = {
            "requests": len(latencies),
            "p50_ms": round(cuts[49] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1),
        }
    return {"trivial": trivial, "mix": mix, "operations": per_operation}


def summarise(name: str, runs: list[dict]) -> dict:
    def median(pick) -> float:
        return round(statistics.median(pick(run) for run in runs), 1)

    return {
        "config": name,
        **CONFIGS[name],
        "rounds": len(runs),
        "trivial_per_s": median(lambda r: r["trivial"]["per_s"]),
        "mix_per_s": median(lambda r: r["mix"]["per_s"]),
        "mix_per_s_each_round": [run["mix"]["per_s"] for run in runs],
        "mix_p50_ms": median(lambda r: r["mix"]["p50_ms"]),
        "mix_p99_ms": median(lambda r: r["mix"]["p99_ms"]),
        "operations": {
            operation: {
                figure: median(lambda r, o=operation, f=figure: r["operations"][o][f])
                for figure in ("p50_ms", "p99_ms")
            }
            for operation, _ in MIX
        },
        "non_2xx": sum(run["mix"]["non_2xx"] + run["trivial"]["non_2xx"] for run in runs),
        "5xx": sum(run["mix"]["5xx"] + run["trivial"]["5xx"] for run in runs),
    }


def print_table(result: dict) -> None:
    print(
        f"tuning {result['date']}: {result['shoppers']} shoppers, {result['seconds']} s of mix "
        f"per configuration and round, {result['rounds']} rounds; PostgreSQL "
        f"{result['postgresql']}, Python {result['python']}, {result['cpus']} CPUs; load "
        f"{result['loadavg_before']} before, {result['loadavg_after']} after"
    )
    print(
        f"{'config':<18}{'mix/s':>7}{'rounds':>22}{'p50':>7}{'p99':>7}{'cat p50':>8}"
        f"{'prod p50':>9}{'chk p50':>8}{'chk p99':>8}{'triv/s':>8}{'÷triv':>7}"
        f"{'÷' + BASELINE:>8}{'5xx':>5}"
    )
    for row in result["configs"]:
        ops = row["operations"]
        rounds = "/".join(f"{x:g}" for x in row["mix_per_s_each_round"])
        print(
            f"{row['config']:<18}{row['mix_per_s']:>7}{rounds:>22}{row['mix_p50_ms']:>7}"
            f"{row['mix_p99_ms']:>7}{ops['catalogue']['p50_ms']:>8}{ops['product']['p50_ms']:>9}"
            f"{ops['checkout']['p50_ms']:>8}{ops['checkout']['p99_ms']:>8}"
            f"{row['trivial_per_s']:>8}{row['ratio_to_trivial']:>7}{row['ratio_to_baseline']:>8}"
            f"{row['5xx']:>5}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=32, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=10, help="mix per configuration")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    chosen = [c.strip() for c in args.configs.split(",") if c.strip()]
    if unknown := set(chosen) - set(CONFIGS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose among {list(CONFIGS)}")
    if BASELINE not in chosen:
        chosen.insert(0, BASELINE)
    if args.shoppers < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--shoppers, --seconds and --rounds must be positive")
    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.scheme not in POSTGRES_SCHEMES:
        print("tuning needs PostgreSQL: set DATABASE_URL (see the docstring)", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="tuning-"))
    redis_server = RedisServer(workdir)
    os.environ["REDIS_URL"] = redis_server.url
    import django

    django.setup()
    from django.db import connection

    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    main_database = connection.settings_dict["NAME"]
    scratch = f"{main_database}_shopbench"
    connection.settings_dict["TEST"]["NAME"] = scratch
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path=f"/{scratch}")),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SHOP_THROTTLE_CHECKOUT_SHOPPER": "100000/min",
        "SHOP_THROTTLE_CHECKOUT_IP": "100000/min",
        "SHOP_THROTTLE_LOGIN_IP": "100000/min",
    }
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    log = (workdir / "gunicorn.log").open("w+", encoding="utf-8")
    try:
        redis_server.start()
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        random.seed(1)
        data = prepare(args.shoppers)
        connection.close()
        for round_number in range(1, args.rounds + 1):
            for name in chosen:
                print(f"round {round_number}: {name} ...", file=sys.stderr)
                runs[name].append(measure(CONFIGS[name], env, data, args, log))
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            [server_version] = cursor.fetchone()
    finally:
        connection.close()
        connection.creation.destroy_test_db(main_database, verbosity=0)
        redis_server.stop()
        log.seek(0)
        errors = [line.rstrip() for line in log if "ERROR" in line or "Traceback" in line][:20]
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [summarise(name, runs[name]) for name in chosen]
    baseline = next(row for row in rows if row["config"] == BASELINE)["mix_per_s"]
    for row in rows:
        row["ratio_to_trivial"] = round(row["mix_per_s"] / row["trivial_per_s"], 3)
        row["ratio_to_baseline"] = round(row["mix_per_s"] / baseline, 2)
    result = {
        "bench": "tuning",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "postgresql": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "shoppers": args.shoppers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "mix": dict(MIX),
        "configs": rows,
        "server_log": errors,
    }
    print_table(result)
    for line in errors:
        print(f"  gunicorn: {line}")
    print(json.dumps(result, ensure_ascii=False))
    return 1 if any(row["5xx"] for row in rows) or errors else 0


if __name__ == "__main__":
    sys.exit(main())
