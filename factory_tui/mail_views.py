"""What the console's mail views share (the Mail pane, a thread's screen):
the log events they read themselves again on and a thread's keys. Its own
module so that the pane defines itself without importing the screens (the
console's first frame draws none)."""

from __future__ import annotations

# The log's mail events: a thread on screen reads itself again on each.
MAIL_EVENTS = ("mail_received", "mail_sent", "mail_quarantined", "mail_read")
# What a thread on screen reads itself again on (besides its tasks' changes).
THREAD_EVENTS = ("mail_received", "mail_sent")
# The keys of a thread wherever it shows (the pane, the thread's screen).
THREAD_KEYS = ("mail.reply", "mail.new", "mail.task", "mail.ack", "mail.decline")
