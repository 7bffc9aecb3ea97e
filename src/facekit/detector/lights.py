"""The Vision Kit's lights as the detector's state: the button's RGB LED and the privacy LED.

Green while faces are seen, dim blue when none, blinking red on an error, off when the
service stops; only where the board has the LED driver (AIY's aiy.leds). An LED failure
is logged once and the lights are left alone after it: they must never stop the
service. Python 3.5.
"""

import logging

log = logging.getLogger(__name__)


class Lights(object):
    """The service's lights (see the module docstring); show(state) sets them."""

    FACES = "faces"
    IDLE = "idle"
    ERROR = "error"
    OFF = "off"

    def __init__(self):
        self._leds = None
        self._state = None
        try:
            from aiy import leds  # noqa: PLC0415
        except ImportError as exc:
            log.info("no LEDs: the AIY library's leds module cannot be imported (%s)", exc)
            return
        self._module = leds
        if not leds.Leds.installed():
            log.info("no LEDs on this board (no LED driver at %s): running without them",
                     getattr(leds, "_DEVICE_PATH", "its sysfs path").rstrip("/"))
            return
        self._try(lambda: setattr(self, "_leds", leds.Leds()))

    @property
    def available(self):
        return self._leds is not None

    def _try(self, action):
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - an LED must never stop the service
            log.warning("LED update failed (%s: %s): running without LEDs", type(exc).__name__,
                        exc)
            self._leds = None

    def show(self, state):
        if self._leds is None or state == self._state:
            return
        self._state = state
        leds, mod = self._leds, self._module

        def update():
            if state == self.FACES:
                leds.update(mod.Leds.rgb_on(mod.Color.GREEN))
                leds.update(mod.Leds.privacy_on(32))
            elif state == self.IDLE:
                leds.update(mod.Leds.rgb_on((0, 0, 0x20)))
                leds.update(mod.Leds.privacy_on(32))
            elif state == self.ERROR:
                leds.pattern = mod.Pattern.blink(500)
                leds.update(mod.Leds.rgb_pattern(mod.Color.RED))
                leds.update(mod.Leds.privacy_off())
            else:
                leds.update(mod.Leds.rgb_off())
                leds.update(mod.Leds.privacy_off())

        self._try(update)
