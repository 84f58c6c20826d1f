from django.contrib import admin

from members.models import Member


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Members as staff look them up: by mobile number (its tail is enough) or name."""

    list_display = ["mobile", "name", "created_at"]
    search_fields = ["mobile", "name"]
    readonly_fields = ["created_at"]
