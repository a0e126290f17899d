"""The bot's permissions computed as Discord's docs compute them (Topics → Permissions → Permission Overwrites),
one rule per test, and the names of what is missing."""

from discomfy.bot.permissions import (
    ALL_PERMISSIONS,
    MEMBER,
    REQUIRED_BITS,
    ROLE,
    Overwrite,
    Permission,
    base_permissions,
    channel_permissions,
    invite_url,
    missing,
    parse_overwrites,
)

GUILD, OWNER, BOT, BOT_ROLE, OTHER_ROLE = 1, 2, 3, 4, 5
V, S, E, A, H = (
    Permission.VIEW_CHANNEL,
    Permission.SEND_MESSAGES,
    Permission.EMBED_LINKS,
    Permission.ATTACH_FILES,
    Permission.READ_MESSAGE_HISTORY,
)
EVERYTHING = int(V | S | E | A | H)


def base(everyone: int, bot_role: int = 0, *, user: int = BOT) -> int:
    roles = {GUILD: everyone, BOT_ROLE: bot_role}
    return base_permissions(
        guild_id=GUILD, owner_id=OWNER, user_id=user, role_permissions=roles, member_roles=[BOT_ROLE]
    )


def in_channel(value: int, *overwrites: Overwrite, roles: tuple[int, ...] = (BOT_ROLE,)) -> int:
    return channel_permissions(value, overwrites, guild_id=GUILD, user_id=BOT, member_roles=roles)


def test_base_is_everyone_or_the_members_roles() -> None:
    assert base(int(V | S), int(E)) == int(V | S | E)


def test_the_owner_and_an_administrator_have_everything() -> None:
    assert base(0, user=OWNER) == ALL_PERMISSIONS
    assert base(0, int(Permission.ADMINISTRATOR)) == ALL_PERMISSIONS
    assert in_channel(base(0, int(Permission.ADMINISTRATOR)), Overwrite(BOT, MEMBER, 0, EVERYTHING)) == ALL_PERMISSIONS


def test_everyones_overwrite_applies_first() -> None:
    assert in_channel(EVERYTHING, Overwrite(GUILD, ROLE, 0, int(A))) == EVERYTHING & ~A


def test_role_overwrites_are_combined_and_their_allow_beats_their_deny() -> None:
    overwrites = (Overwrite(BOT_ROLE, ROLE, 0, int(A)), Overwrite(OTHER_ROLE, ROLE, int(A), 0))
    assert in_channel(EVERYTHING, *overwrites, roles=(BOT_ROLE, OTHER_ROLE)) == EVERYTHING


def test_a_role_overwrite_beats_everyones() -> None:
    overwrites = (Overwrite(GUILD, ROLE, 0, int(S)), Overwrite(BOT_ROLE, ROLE, int(S), 0))
    assert in_channel(EVERYTHING, *overwrites) == EVERYTHING


def test_the_members_own_overwrite_comes_last() -> None:
    overwrites = (Overwrite(BOT_ROLE, ROLE, int(E), 0), Overwrite(BOT, MEMBER, 0, int(E)))
    assert in_channel(EVERYTHING, *overwrites) == EVERYTHING & ~E


def test_overwrites_of_roles_the_member_lacks_do_not_count() -> None:
    assert in_channel(EVERYTHING, Overwrite(OTHER_ROLE, ROLE, 0, EVERYTHING)) == EVERYTHING


def test_missing_names_what_lacks_and_counts_implicit_denials() -> None:
    assert missing(EVERYTHING) == []
    assert missing(EVERYTHING & ~A) == ["Attach Files"]
    assert missing(int(S | E | A | H)) == [
        "View Channel",
        "Send Messages",
        "Embed Links",
        "Attach Files",
        "Read Message History",
    ]
    assert missing(int(V | E | A | H)) == ["Send Messages", "Embed Links", "Attach Files"]


def test_malformed_overwrites_are_skipped() -> None:
    raw = [{"id": "4", "type": 0, "allow": "1024", "deny": "0"}, {"id": "x"}, "junk", {"type": 1}]
    assert parse_overwrites(raw) == (Overwrite(4, ROLE, 1024, 0),)
    assert parse_overwrites(None) == ()


def test_the_invite_asks_for_both_scopes_and_exactly_the_required_permissions() -> None:
    assert REQUIRED_BITS == 117760
    assert invite_url(42).endswith("client_id=42&scope=bot+applications.commands&permissions=117760")
