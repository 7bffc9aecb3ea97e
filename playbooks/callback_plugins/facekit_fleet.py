"""Callback: at the end of a run, which Vision Kit runs which model version.

A rolling deploy stops when more kits fail than max_fail_percentage allows; Ansible's own recap
then lists ok/changed/failed counts, not what each kit is running. roles/vision_kit sets the fact
vision_kit_report ({"model", "version", "target", "state", "reason"}) on every kit it deployed to
or rolled back; plays that set facekit_fleet_play in their vars are the kits' plays, so the kits
they never reached (the rollout stopped first) are listed too.
"""

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: facekit_fleet
    type: aggregate
    short_description: which Vision Kit runs which model version, after a deploy
    description:
      - Prints one line per Vision Kit at the end of the run, from the vision_kit_report fact of
        roles/vision_kit, the last failure of a kit without one, and the kits a stopped rollout
        never reached.
    requirements:
      - enable in ansible.cfg (callbacks_enabled)
"""



class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "facekit_fleet"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.kits = []
        self.reports = {}
        self.failures = {}

    def v2_playbook_on_play_start(self, play):
        if not play.vars.get("facekit_fleet_play"):
            return
        # With `serial`, this event comes once per batch and the inventory is restricted to
        # that batch; a rollout that stops never starts the later batches. The play's kits are
        # therefore read ignoring that restriction (not --limit, which ignore_limits would).
        try:
            inventory = play._variable_manager._inventory  # noqa: SLF001 - no public accessor
            hosts = [h.name for h in inventory.get_hosts(play.hosts, ignore_restrictions=True)]
        except Exception:  # noqa: BLE001 - a recap must never break a run
            hosts = []
        for name in hosts:
            if name not in self.kits:
                self.kits.append(name)

    def v2_runner_on_ok(self, result):
        facts = result._result.get("ansible_facts") or {}  # noqa: SLF001
        report = facts.get("vision_kit_report")
        if isinstance(report, dict):
            name = result._host.get_name()  # noqa: SLF001
            self.reports[name] = report
            if name not in self.kits:
                self.kits.append(name)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            return
        name = result._host.get_name()  # noqa: SLF001
        if name in self.kits:
            message = result._result.get("msg") or "failed"  # noqa: SLF001
            self.failures[name] = "{}: {}".format(result._task.get_name(), message)  # noqa: SLF001

    def v2_runner_on_unreachable(self, result):
        name = result._host.get_name()  # noqa: SLF001
        if name in self.kits:
            self.failures[name] = "unreachable: {}".format(result._result.get("msg", ""))  # noqa: SLF001

    def v2_playbook_on_stats(self, stats):
        if not self.kits:
            return
        self._display.banner("VISION KITS")
        width = max(len(k) for k in self.kits)
        counts = {}
        for kit in self.kits:
            report = self.reports.get(kit)
            if report:
                state = report.get("state", "?")
                line = "{}  {} {}  {}".format(kit.ljust(width), report.get("model", "?"),
                                              report.get("version") or "-", state)
                if report.get("target") and report.get("target") != report.get("version"):
                    line += " (wanted {})".format(report["target"])
                if report.get("reason"):
                    line += ": " + report["reason"]
                if isinstance(report.get("thresholds"), dict):
                    line += "  thresholds " + ", ".join(
                        "{} {} ({})".format(label, entry.get("score"), entry.get("from"))
                        for label, entry in sorted(report["thresholds"].items()))
            elif kit in self.failures:
                state = "failed"
                line = "{}  failed before a release was switched: {}".format(
                    kit.ljust(width), self.failures[kit])
            else:
                state = "not reached"
                line = "{}  not reached (the rollout stopped first): still runs what it ran".format(
                    kit.ljust(width))
            counts[state] = counts.get(state, 0) + 1
            self._display.display(line)
        self._display.display("; ".join("{} {}".format(n, s) for s, n in sorted(counts.items())))
