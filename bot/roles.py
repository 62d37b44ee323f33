"""Who a user can be, and which passages each role may see. One place, so every module agrees."""

from __future__ import annotations

# The order is the order /start offers them in.
ROLES = ("parent", "pupil", "staff", "new_teacher")
# Parents, pupils (and anyone unverified) only ever see public passages; staff material stays with staff.
AUDIENCES_FOR_ROLE = {
    "parent": ("public",),
    "pupil": ("public",),
    "staff": ("public", "staff"),
    "new_teacher": ("public", "staff"),
}
PUBLIC_ROLE = "parent"
STAFF_ROLES = ("staff", "new_teacher")  # roles that may need proof before they see staff passages
ROLE_INTENTS = {"i_am_parent": "parent", "i_am_pupil": "pupil", "i_am_staff": "staff"}  # chat intents that state a role
# The walkthrough /meld starts for each role; if it is missing, the first flow offered to the role is used.
PRIMARY_FLOW = {"parent": "forelder-utrygg", "pupil": "elev-utrygg", "staff": "ansatt-melde",
                "new_teacher": "nyutdannet"}
