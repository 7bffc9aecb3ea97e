"""facekit.detector.lights: the LEDs follow the service's state and never stop it."""

import logging
import os

from aiy import leds

from facekit.detector.lights import Lights


def test_lights_follow_the_state_and_never_stop_the_service(tmp_path, monkeypatch, caplog):
    device = tmp_path / "led1" / "device"
    device.mkdir(parents=True)
    monkeypatch.setattr(leds, "_DEVICE_PATH", str(device) + "/")
    registers = device / "registers"
    lights = Lights()
    assert lights.available and (device / "reset").read_text() == "1"
    lights.show(lights.FACES)
    # Each update writes the file anew: the last one is the privacy LED.
    assert registers.read_text() == "led4=32;ch4_enable=1;"
    registers.write_text("")
    lights.show(lights.FACES)
    assert registers.read_text() == "", "an unchanged state is not written again"
    lights.show(lights.ERROR)
    assert registers.read_text() == "led4=0;ch4_enable=0;"
    registers.unlink()
    registers.mkdir()  # writes now fail
    with caplog.at_level(logging.WARNING):
        lights.show(lights.IDLE)
    assert not lights.available
    assert "LED update failed (IsADirectoryError" in caplog.text
    lights.show(lights.FACES)

    monkeypatch.setattr(leds, "_DEVICE_PATH", str(tmp_path / "none") + "/")
    with caplog.at_level(logging.INFO):
        assert not Lights().available
    assert "no LEDs on this board (no LED driver at {})".format(tmp_path / "none") in caplog.text


def test_lights_colours(tmp_path, monkeypatch):
    device = tmp_path / "device"
    device.mkdir()
    monkeypatch.setattr(leds, "_DEVICE_PATH", str(device) + "/")
    written = []
    monkeypatch.setattr(leds, "_write", lambda path, data: written.append(
        (os.path.basename(path), str(data))))
    lights = Lights()
    for state in (lights.FACES, lights.IDLE, lights.ERROR, lights.OFF):
        lights.show(state)
    assert written == [
        ("reset", "1"),
        ("registers", "led1=0;ch1_enable=1;led2=255;ch2_enable=1;led3=0;ch3_enable=1;"),
        ("registers", "led4=32;ch4_enable=1;"),
        ("registers", "led1=0;ch1_enable=1;led2=0;ch2_enable=1;led3=32;ch3_enable=1;"),
        ("registers", "led4=32;ch4_enable=1;"),
        ("registers", "tflash=2;pwm1=128;trise=0;tfall=0;"),
        ("registers", "led1=255;ch1_enable=2;led2=0;ch2_enable=2;led3=0;ch3_enable=2;"),
        ("registers", "led4=0;ch4_enable=0;"),
        ("registers", "led1=0;ch1_enable=0;led2=0;ch2_enable=0;led3=0;ch3_enable=0;"),
        ("registers", "led4=0;ch4_enable=0;"),
    ]
