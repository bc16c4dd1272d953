"""Alert groups, as Alertmanager groups them: what fires together goes out together.

A rule's series alerts are grouped by the values of the rule's `group_by` labels
(none: one group for the whole rule). A group's first message waits `group_wait`
seconds after its first alert, so alerts firing together (a bad deploy tripping
forty hosts) go out as ONE message listing them; later changes (more alerts
firing, some resolving) wait until `group_interval` has passed since the last
message, so a flapping series never makes a storm; while alerts keep firing
unacknowledged, the group says so again every `repeat_minutes`. A resolved
message lists what resolved. Each group has a stable key (`group_key`, in the
notification's parameters and the webhook JSON) so receivers can thread it.

Time is whatever the evaluator's `now` is (the collector's clock), so tests drive
it without sleeping. Groups live in the collector's memory: after a restart the
alerts still firing are taken as already announced (their message went out).
"""

from dataclasses import dataclass, field

from dashboard import series as series_ids


def group_labels(rule, labels):
    """The values of the rule's `group_by` labels in `labels` (absent ones left out)."""
    return {name: labels[name] for name in sorted(rule.group_by or ()) if labels.get(name)}


def group_key(rule, labels):
    """`rule-7{cluster="eu"}`: the same for a group every time, in every process."""
    return f"rule-{rule.pk}" + series_ids.format_id("", labels)


@dataclass
class Member:
    series: str
    labels: dict
    value: float | None
    # "fired" (new since the last message), "firing" (announced), "resolved", "no_data".
    status: str


@dataclass
class Group:
    rule_id: int
    key: str
    labels: dict
    firing: dict = field(default_factory=dict)  # series id -> Member
    resolved: dict = field(default_factory=dict)  # series id -> Member, announced as firing before
    # The series the last message said were firing.
    announced: set = field(default_factory=set)
    started: float | None = None
    last_sent: float | None = None

    @property
    def changed(self):
        """Whether there is news since the last message: an alert firing that it did not
        list, or one it listed that resolved. A series that resolved and fired again in
        between is no news (that is what keeps a flapping series quiet)."""
        return bool(self.resolved) or any(m.status == "fired" for m in self.firing.values())

    def fired(self, series, labels, value, now):
        status = "firing" if series in self.announced else "fired"
        self.firing[series] = Member(series, labels, value, status)
        self.resolved.pop(series, None)
        if self.started is None:
            self.started = now

    def still(self, series, value):
        member = self.firing.get(series)
        if member is not None:
            member.value = value

    def resumed(self, series, labels, value, now):
        """An alert already firing when this process started: its message went out."""
        self.firing[series] = Member(series, labels, value, "firing")
        self.announced.add(series)
        self.started = self.started if self.started is not None else now
        self.last_sent = self.last_sent if self.last_sent is not None else now

    def resolved_now(self, series, value, no_data=False):
        member = self.firing.pop(series, None)
        if member is None or series not in self.announced:
            return  # never announced: nobody needs to hear it resolved
        member.value, member.status = value, "no_data" if no_data else "resolved"
        self.resolved[series] = member

    def _moments(self, rule):
        """{what the group would send: from when}, in the order `due` prefers them."""
        if self.last_sent is None:
            return {"first": self.started + rule.group_wait} if self.firing else {}
        moments = {}
        if self.changed:
            moments["update"] = self.last_sent + rule.group_interval
        if self.firing and rule.repeat_minutes:
            moments["repeat"] = self.last_sent + rule.repeat_minutes * 60
        return moments

    def due(self, rule, now):
        """'first', 'update', 'repeat' or None: what this group should send now."""
        return next((what for what, at in self._moments(rule).items() if now >= at), None)

    def due_at(self, rule):
        """The earliest time at which `due` answers something if nothing changes
        meanwhile, or None: when the messenger (alerts.messenger) sends it."""
        return min(self._moments(rule).values(), default=None)

    def sent(self, now):
        for member in self.firing.values():
            member.status = "firing"
        self.announced = set(self.firing)
        self.resolved.clear()
        self.last_sent = now

    @property
    def finished(self):
        """Nothing fires or waits to be said: the next alert starts a new round (group_wait again)."""
        return not self.firing and not self.resolved
