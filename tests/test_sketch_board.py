"""The sketch's board behaviour (issue 12, "Board"), on the host against RECORDING stand-ins
of the Arduino core, PDM library and TFLM (micro_app/tests/sketch_host/):

- LED: the RGB LED is driven by PWM only (analogWrite; never digitalWrite or pinMode, which
  do not take a pin back from PWM on the nRF52), and "off" is full duty (active low).
- Boot: one wait for a serial monitor, at most KWS_SERIAL_WAIT_MS; tflite::InitializeTarget()
  (a second, 4 s wait in the TFLM Arduino library) is not called.
- Arena: a failed AllocateTensors is blink code 3; an arena that fits with less than
  KWS_ARENA_MIN_FREE_BYTES left is blink code 9 with the build flag that fixes it.
- Builders: the files an old builder compiles (no .cc) and the files arduino-cli compiles
  (.cc too) both link, once, with the generated files as the exporter writes them.
- Serial session (main_session.cc): op registration, banner, detections, BENCH lines,
  self-test, overrun report and the fatal-error paths, read with kws_tf.device's parsers;
  the step model with its state copied back through overlapping buffers, the windowed
  build, an export without a step model; and the ARM cross-compile of the sketch.

The stand-ins check the glue's logic, not the real libraries (see micro_app/README.md,
"Board: reasoned, not yet seen")."""

import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MICRO_APP = ROOT / "micro_app"
STUBS = MICRO_APP / "tests" / "sketch_host"
FLAGS = ["-std=gnu++14", "-O1", "-fno-exceptions", "-fno-rtti", "-DSTUB_INPUT_SCALE=0.05f"]
OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MINIMUM", "AVERAGE_POOL_2D")
MODEL_ARENA = 12000  # kArenaBytes of the test export; the stub interpreter uses STUB_ARENA_USED
LED_PINS = {22: "r", 23: "g", 24: "b"}  # LEDR, LEDG, LEDB in the stand-in Arduino.h

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


def _board_options() -> dict:
    text = (MICRO_APP / "board_options.h").read_text()
    return {k: int(v) for k, v in re.findall(r"#define (KWS_\w+) (\d+)\n", text)}


def _resolver_header(root: pathlib.Path):
    """The op resolver, generated from MICRO_OPS: prints "STUB registered <op>" for every op the
    sketch registers and refuses more than its template's op count, as TFLM's does."""
    from kws_tf import tflite_tools

    methods = "\n".join(f'  TfLiteStatus {m}() {{ return Add("{op}"); }}' for op, m in tflite_tools.MICRO_OPS.items())
    (root / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\n#include <stdio.h>\n#include \"tensorflow/lite/micro/micro_interpreter.h\"\n"
        "namespace tflite {\ntemplate <unsigned int tOpCount>\nclass MicroMutableOpResolver : public MicroOpResolver {\n"
        f" public:\n{methods}\n private:\n  TfLiteStatus Add(const char* name) {{\n"
        "    if (count_ >= tOpCount) return kTfLiteError;\n    ++count_;\n"
        "    printf(\"STUB registered %s\\n\", name);\n    return kTfLiteOk;\n  }\n  unsigned int count_ = 0;\n};\n}\n")


TONE = (8000 * np.sin(2 * np.pi * 700 * np.arange(16000) / 16000)).astype(np.int16)
BOARD_CLIPS = [("tone", TONE, "yes")]


def _sketch(tmp_path: pathlib.Path, selftest: bool = True, ops=OPS, step_model=None, step_data=False,
            clips=BOARD_CLIPS) -> pathlib.Path:
    """A sketch folder laid out as the user makes it: micro_app's sketch files (the .ino, board
    headers, src/) + the exporter's generated files, rendered by the same functions export uses;
    nothing else from micro_app/ (a model copied there for the board cannot leak into the test).
    `step_model`: kws_settings.h's step model (None: none); `step_data`: write model_step_data
    too (the stub interpreter knows the step model by its first byte, 'S')."""
    from kws_tf import codegen, features, selftest_data

    sketch = tmp_path / "micro_app"
    sketch.mkdir()
    shutil.copytree(MICRO_APP / "src", sketch / "src")
    for f in [MICRO_APP / "micro_app.ino", *MICRO_APP.glob("board_*.h")]:
        shutil.copy(f, sketch / f.name)
    (sketch / "kws_settings.h").write_text(codegen.render_frontend_header(
        features.Normalization.identity(), 0.05, 0, ops=ops, arena_bytes=MODEL_ARENA, model_name="stub",
        output_scale=1.0 / 256.0, output_zero_point=-128, output_is_logits=False, step_model=step_model))
    models = [("g_model", "model_data", bytes(range(32)))]
    if step_data:
        models.append(("g_step_model", "model_step_data", b"S" + bytes(range(31))))
    for name, base, data in models:
        header, source = codegen.render_model_data(data, name=name)
        (sketch / f"{base}.h").write_text(header)
        (sketch / f"{base}.cc").write_text(source)  # the names export writes
    if selftest:
        selftest_data.write_selftest_data(sketch, clips)
    return sketch


def _ino_as_cpp(sketch: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """What every Arduino builder makes of the .ino (prototypes aside: the sketch defines before use)."""
    cpp = out / "micro_app.ino.cpp"
    cpp.write_text("#include <Arduino.h>\n#line 1 \"micro_app.ino\"\n" + (sketch / "micro_app.ino").read_text())
    return cpp


def _compiled_by(sketch: pathlib.Path, builder: str) -> list:
    """The sketch's source files a builder compiles besides the .ino: the sketch root (not
    recursive) and src/ (recursive). `old` (Arduino IDE 1.8, arduino-builder): .c/.cpp/.S;
    `cli` (arduino-cli with .cc support): .cc as well."""
    ext = {".c", ".cpp", ".S"} | ({".cc"} if builder == "cli" else set())
    files = [p for p in sketch.iterdir() if p.is_file()] + [p for p in (sketch / "src").rglob("*") if p.is_file()]
    return sorted(p for p in files if p.suffix in ext)


@pytest.fixture(scope="module")
def core_objects(tmp_path_factory) -> dict:
    """micro_app/src compiled once for the module: every file a builder finds there (the host
    bridge kws_c_api.cpp too: the Arduino builders compile all of src/)."""
    out = tmp_path_factory.mktemp("core")
    objs = {}
    for src in sorted((MICRO_APP / "src").rglob("*")):
        if src.suffix in {".c", ".cpp", ".S", ".cc"}:
            obj = out / f"{src.name}.o"
            subprocess.run(["g++", *FLAGS, "-Wall", "-c", str(src), "-o", str(obj)], check=True)
            objs[src.relative_to(MICRO_APP / "src")] = str(obj)
    return objs


def _stub_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """micro_app/tests/sketch_host + the generated op resolver."""
    stub_dir = tmp_path / "stubs"
    shutil.copytree(STUBS, stub_dir)
    _resolver_header(stub_dir / "tensorflow" / "lite" / "micro")
    return stub_dir


def _build(tmp_path, core_objects, *defines, builder="cli", stubs_defines=(), main="main.cc",
           **options) -> pathlib.Path:
    """Compiles the sketch as `builder` would (the .ino and the generated files with -Wall -Wextra
    -Werror; src/ from `core_objects`) and links it with the recording stand-ins and the driver
    `main` (main.cc: the board scenario; main_session.cc: the serial session). `options`: _sketch's
    options."""
    stub_dir = _stub_dir(tmp_path)
    sketch = _sketch(tmp_path, **options)
    objs = tmp_path / "obj"
    objs.mkdir()
    inc = ["-I", str(stub_dir), "-I", str(sketch)]
    out = []
    for i, src in enumerate([_ino_as_cpp(sketch, objs), *_compiled_by(sketch, builder)]):
        if src.is_relative_to(sketch / "src"):
            out.append(core_objects[src.relative_to(sketch / "src")])
            continue
        obj = objs / f"{i}_{src.name}.o"
        r = subprocess.run(["g++", *FLAGS, *inc, *defines, "-Wall", "-Wextra", "-Werror", "-c", str(src),
                            "-o", str(obj)], capture_output=True, text=True)
        assert r.returncode == 0, f"{src.name}:\n{r.stderr[-3000:]}"
        out.append(str(obj))
    exe = tmp_path / "sketch_exe"
    r = subprocess.run(["g++", *FLAGS, *inc, *stubs_defines, str(stub_dir / "stubs.cc"), str(stub_dir / main),
                        *out, "-lm", "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return exe


def _run(exe) -> tuple[int, list]:
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout.splitlines()


def _events(lines, kind) -> list:
    return [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(-?\d+)", line))
            for line in lines if line.startswith(f"STUB {kind} ")]


def _led_states(lines) -> list:
    """(t_ms, (r, g, b) duty) after every LED write: all three pins are always written together."""
    states, duty = [], {}
    for line in lines:
        m = re.match(r"STUB analogWrite t=(\d+) pin=(\d+) value=(\d+)$", line)
        if m and int(m[2]) in LED_PINS:
            duty[LED_PINS[int(m[2])]] = int(m[3])
            if len(duty) == 3 and LED_PINS[int(m[2])] == "b":
                states.append((int(m[1]), (duty["r"], duty["g"], duty["b"])))
    return states


OFF = (255, 255, 255)  # active low: full duty is dark


# ------------------------------------------------------------------------------------- LED


def test_led_is_pwm_only_and_off_is_full_duty(tmp_path, core_objects):
    """Boot, a detection (the LED lights in the keyword's colour) and its timeout: every LED
    change is analogWrite, the LED pins never see digitalWrite or pinMode, and each Off()
    leaves all three pins at duty 255 (dark)."""
    code, lines = _run(_build(tmp_path, core_objects))
    assert code == 0, lines[-30:]
    assert not [e for e in _events(lines, "digitalWrite") + _events(lines, "pinMode") if e["pin"] in LED_PINS]
    states = _led_states(lines)
    setup_done = _events(lines, "setup done")[0]["t"]
    listening = _events(lines, "PDM.begin")[0]["t"]
    # Dark first (Begin attaches PWM), blue while setting up, dark once listening.
    assert states[0][1] == OFF and states[1][1] == (255, 255, 0), states[:3]
    at_setup_end = [s for t, s in states if t <= setup_done][-1]
    assert at_setup_end == OFF and listening <= setup_done
    detection = [line for line in lines if line.startswith("KWS yes")]
    assert detection, lines[-30:]
    assert (255, 0, 255) in [s for _, s in states]  # "yes" = green: duty 0 on G
    assert states[-1][1] == OFF  # the detection's colour timed out through Off()


def test_fatal_blink_code_turns_the_led_off_between_blinks(tmp_path, core_objects):
    """A fatal error (here: the arena margin, code 9) blinks red N times per cycle, dark between
    blinks: visible only if Off() really turns the PWM-driven LED off."""
    code, lines = _run(_build(tmp_path, core_objects, stubs_defines=[f"-DSTUB_ARENA_USED={MODEL_ARENA + 4000}"]))
    assert code == 42, lines[-20:]
    states = _led_states(lines)[2:]  # after Begin (dark) and the set-up colour
    assert states and {s for _, s in states} <= {(0, 255, 255), OFF}, states[:6]  # only red and dark
    red_on = [t for (t, s), (_, prev) in zip(states[1:], states) if s != OFF and prev == OFF]
    red_on = [states[0][0]] * (states[0][1] != OFF) + red_on
    cycles, last = [], None
    for t in red_on:  # blinks 450 ms apart, cycles separated by a 1.5 s pause
        if last is None or t - last > 1000:
            cycles.append(0)
        cycles[-1] += 1
        last = t
    assert len(cycles) >= 2 and all(n == 9 for n in cycles[:-1]), cycles


# ------------------------------------------------------------------------------------- boot


@pytest.mark.parametrize("monitor", [False, True])
def test_boot_waits_once_and_briefly_for_a_monitor(tmp_path, core_objects, monitor):
    """No serial monitor: setup waits KWS_SERIAL_WAIT_MS once, then listens (no second wait:
    tflite::InitializeTarget(), which waits up to 4 s in the TFLM Arduino library, is not
    called). With a monitor: no wait at all."""
    wait_ms = _board_options()["KWS_SERIAL_WAIT_MS"]
    assert 0 < wait_ms <= 2000
    exe = _build(tmp_path, core_objects, stubs_defines=[f"-DSTUB_SERIAL_CONNECTED={int(monitor)}"])
    code, lines = _run(exe)
    assert code == 0, lines[-20:]
    assert "STUB InitializeTarget" not in lines
    listening = _events(lines, "PDM.begin")[0]["t"]
    if monitor:
        assert listening < 50, listening
    else:
        assert wait_ms <= listening <= wait_ms + 50, listening
    assert [line for line in lines if line.startswith("INFO kws_tf micro_app")]


def test_boot_wait_is_a_build_option(tmp_path, core_objects):
    code, lines = _run(_build(tmp_path, core_objects, "-DKWS_SERIAL_WAIT_MS=0", stubs_defines=["-DSTUB_SERIAL_CONNECTED=0"]))
    assert code == 0 and _events(lines, "PDM.begin")[0]["t"] < 50


# ------------------------------------------------------------------------------------ arena


def test_arena_reserve_and_banner(tmp_path, core_objects):
    """The reserve is the exported figure + KWS_ARENA_EXTRA_BYTES (rounded to 16), announced before
    AllocateTensors (the line a crash there would leave last), and the banner reports it with
    the bytes the library really used."""
    extra = _board_options()["KWS_ARENA_EXTRA_BYTES"]
    reserve = -(-(MODEL_ARENA + extra) // 16) * 16
    code, lines = _run(_build(tmp_path, core_objects))
    assert code == 0
    info = [i for i, line in enumerate(lines) if line.startswith("INFO arena ")]
    alloc = [i for i, line in enumerate(lines) if line.startswith("STUB AllocateTensors")]
    assert info and alloc and info[0] < alloc[0]
    assert lines[info[0]].startswith(f"INFO arena {reserve} bytes = windowed model {MODEL_ARENA} (measured")
    assert f"KWS_ARENA_EXTRA_BYTES {extra};" in lines[info[0]]
    banner = [line for line in lines if line.startswith("INFO kws_tf micro_app")][0]
    assert f"arena={reserve} arena_used=12345" in banner


def test_arena_too_small_is_blink_code_3(tmp_path, core_objects):
    code, lines = _run(_build(tmp_path, core_objects, "-DKWS_ARENA_EXTRA_BYTES=0", "-DKWS_ARENA_MIN_FREE_BYTES=0",
                              stubs_defines=[f"-DSTUB_ARENA_USED={MODEL_ARENA + 100}"]))
    assert code == 42
    err = [line for line in lines if line.startswith("ERROR")]
    assert err and re.match(r"ERROR AllocateTensors failed: windowed model, arena 12000 bytes .*\(blink code 3\)$",
                            err[0]), err[:1]
    assert not _events(lines, "PDM.begin")


@pytest.mark.parametrize("free", [0, 1023])
def test_arena_margin_used_up_is_blink_code_9(tmp_path, core_objects, free):
    """AllocateTensors succeeded, but with fewer than KWS_ARENA_MIN_FREE_BYTES (1 KiB) left: an
    ERROR the user sees (repeated, blink code 9) naming the KWS_ARENA_EXTRA_BYTES that fixes it;
    the microphone never starts."""
    options = _board_options()
    reserve = -(-(MODEL_ARENA + options["KWS_ARENA_EXTRA_BYTES"]) // 16) * 16
    used = reserve - free
    code, lines = _run(_build(tmp_path, core_objects, stubs_defines=[f"-DSTUB_ARENA_USED={used}"]))
    assert code == 42
    err = [line for line in lines if line.startswith("ERROR")]
    m = re.match(rf"ERROR arena margin: windowed model used {used} of {reserve} bytes, {free} free < "
                 r"KWS_ARENA_MIN_FREE_BYTES 1024 .*-DKWS_ARENA_EXTRA_BYTES=(\d+) \(blink code 9\)$", err[0])
    assert m, err[0]
    assert len(err) >= 2  # repeated for a monitor opened later
    assert not _events(lines, "PDM.begin")
    # The suggested margin does fix it.
    suggested = int(m[1])
    fixed = _build(tmp_path / "fixed", core_objects, f"-DKWS_ARENA_EXTRA_BYTES={suggested}", stubs_defines=[f"-DSTUB_ARENA_USED={used}"])
    code, lines = _run(fixed)
    assert code == 0 and not [line for line in lines if line.startswith("ERROR")]


def test_arena_margin_check_at_the_limit_passes(tmp_path, core_objects):
    options = _board_options()
    reserve = -(-(MODEL_ARENA + options["KWS_ARENA_EXTRA_BYTES"]) // 16) * 16
    code, lines = _run(_build(tmp_path, core_objects, stubs_defines=[f"-DSTUB_ARENA_USED={reserve - 1024}"]))
    assert code == 0 and not [line for line in lines if line.startswith("ERROR")]


# --------------------------------------------------------------------------------- builders


def test_no_cc_file_in_what_the_builders_compile():
    """Arduino IDE 1.8 and arduino-builder skip .cc files: the core must be .cpp."""
    assert not list((MICRO_APP / "src").rglob("*.cc"))
    assert sorted(p.name for p in (MICRO_APP / "src").glob("*.cpp"))  # the core is there


def test_generated_model_source_defines_nothing(tmp_path):
    """The model data is header-only; the .cc the exporter still writes compiles to no symbol, so
    dropping it (old builders) or compiling it (arduino-cli) makes no difference."""
    from kws_tf import codegen

    header, source = codegen.render_model_data(b"\x01\x02\x03", name="g_step_model")
    assert "alignas(16) const unsigned char g_step_model[]" in header and "{" not in source
    (tmp_path / "model_step_data.cc").write_text(source)
    obj = tmp_path / "m.o"
    subprocess.run(["g++", *FLAGS, "-Wall", "-Wextra", "-Werror", "-c", str(tmp_path / "model_step_data.cc"), "-o",
                    str(obj)], check=True)
    syms = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    assert "g_step_model" not in syms


@pytest.mark.parametrize("builder", ["old", "cli"])
def test_sketch_links_with_every_builder_without_selftest(tmp_path, core_objects, builder):
    """Without self-test data (also: no unused FindLabel warning under -Werror) and with
    KWS_SERIAL_WAIT_MS=0 (no always-false comparison warning)."""
    code, lines = _run(_build(tmp_path, core_objects, "-DKWS_SERIAL_WAIT_MS=0", builder=builder, selftest=False))
    assert code == 0, lines[-20:]


@pytest.mark.parametrize("builder", ["old", "cli"])
def test_sketch_links_with_every_builder_with_selftest(tmp_path, core_objects, builder):
    code, lines = _run(_build(tmp_path, core_objects, builder=builder))
    assert code == 0, lines[-20:]


# ------------------------------------------------------------------------- the op table


def _ops_in_generated_table():
    from kws_tf import codegen, features

    text = codegen.render_frontend_header(features.Normalization.identity(), 0.05, 0)
    return dict(re.findall(r'^\s*X\("([A-Z0-9_]+)",\s*(\w+)\)', text, re.M))


def test_board_op_table_is_generated_from_micro_ops():
    from kws_tf import tflite_tools

    assert _ops_in_generated_table() == tflite_tools.MICRO_OPS
    assert 'X("' not in (MICRO_APP / "board_ops.h").read_text()  # no second, hand-typed copy


# ------------------------------------------------------------------------- the serial session
#
# The same stand-ins, driven by main_session.cc: setup(), Serial commands, PDM callbacks,
# self-test, an overrun, and the fatal errors, with the step model (the stub interpreter's
# state tensors overlap in the arena) and the windowed one. The host tools' parsers
# (kws_tf.device) read what the sketch prints.

# kOpNames covers both exported models (the step model adds CONCATENATION and SPLIT_V).
SKETCH_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "TANH", "MINIMUM", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
              "CONCATENATION", "SPLIT_V")
STUB_STEP = {"delay_frames": 5, "num_states": 2, "arena_bytes": 9000}  # STUB_DELAY in stubs.cc
SESSION_CLIPS = [("tone", TONE, "yes"), ("quiet", np.zeros(16000, np.int16), ""),
                 ("quiet_bad", np.zeros(1600, np.int16), "no")]


def _session_sketch(step_model: bool = True, step_data: bool = True) -> dict:
    """_sketch's options for the serial session's export (the step model, three self-test clips)."""
    return dict(ops=SKETCH_OPS, step_model=STUB_STEP if step_model else None, step_data=step_data,
                clips=SESSION_CLIPS)


def _build_session(tmp_path, core_objects, *defines, **generated):
    """The sketch linked with main_session.cc; `defines` reach the sketch and the stand-ins alike."""
    return _build(tmp_path, core_objects, *defines, stubs_defines=defines, main="main_session.cc",
                  **_session_sketch(**generated))


@pytest.mark.parametrize("variant", ["step", "step_cycle", "window", "no_step_model"])
def test_sketch_runs_on_host_stubs(tmp_path, core_objects, variant):
    """setup(), commands, detections, BENCH lines, self-test and an overrun, with
    step: the default build, the per-frame step model (its state copied back through the plan:
       the stub's state output 2 sits on state input 1);
    step_cycle: the state buffers overlap in a cycle (staged through KWS_STEP_STAGING_BYTES);
    window: -DKWS_WINDOWED_MODEL=1;
    no_step_model: an export without a step model (kHasStepModel false, no model_step_data.h)."""
    from kws_tf import device

    defines = {"step_cycle": ["-DSTUB_STATE_CYCLE"], "window": ["-DKWS_WINDOWED_MODEL=1"]}.get(variant, [])
    generated = {"step_model": False, "step_data": False} if variant == "no_step_model" else {}
    exe = _build_session(tmp_path, core_objects, *defines, **generated)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    step = variant.startswith("step")
    arena_used = 8888 if step else 12345
    registered = [line.split()[-1] for line in lines if line.startswith("STUB registered")]
    assert sorted(registered) == sorted(SKETCH_OPS)  # exactly the exported ops
    assert not [line for line in lines if "STUB state corrupt" in line]
    banner = [line for line in lines if line.startswith("INFO kws_tf micro_app")]
    assert banner and f"arena_used={arena_used}" in banner[0] and "selftest_clips=3" in banner[0]
    assert ("mode=frame delay=5 states=2" if step else "mode=window delay=0 states=0") in banner[0], banner[0]
    assert not [line for line in lines if line.startswith("ERROR")]

    detections = [d for d in map(device.parse_detection_line, lines) if d]
    assert [d["label"] for d in detections[:1]] == ["yes"]
    assert 1500 <= detections[0]["t_ms"] <= 3000
    bench = [device.parse_bench_line(line) for line in lines if line.startswith("BENCH")]
    assert len(bench) >= 3
    assert all(b["arena"] == arena_used and b["overruns"] == 0 for b in bench)
    assert bench[-1]["invoke_us"][0] > 0 and bench[-1]["mfcc_us"][1] > 0
    assert all(b["mode"] == ("frame" if step else "window") for b in bench)
    assert all(b["hop_us"][2] >= b["invoke_us"][2] and len(b["duty_pct"]) == 3 for b in bench)
    if step:  # the model ran on every frame
        assert all(b["invokes"] == b["frames"] for b in bench)
    else:
        assert all(b["invokes"] < b["frames"] / 3 for b in bench)

    st = [s for s in map(device.parse_selftest_line, lines) if s]
    kinds = [s["kind"] for s in st]
    assert kinds == ["begin", "clip", "result", "clip", "result", "clip", "result", "end"], st
    assert [s["passed"] for s in st if s["kind"] == "result"] == [True, True, False]
    assert st[-1] == {"kind": "end", "pass": 2, "fail": 1}
    warn = [line for line in lines if line.startswith("WARN audio overrun")]
    assert warn and re.search(r"events=[1-9]\d* dropped=[1-9]", warn[0]), lines[-20:]


def _fatal_line(exe) -> str:
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 42, r.stdout[-2000:]  # the stub's delay() ends the endless blink loop
    return [line for line in r.stdout.splitlines() if line.startswith("ERROR")][0]


def test_sketch_fatal_error_on_mismatched_input_quantisation(tmp_path, core_objects):
    first = _fatal_line(_build_session(tmp_path, core_objects, "-USTUB_INPUT_SCALE", "-DSTUB_INPUT_SCALE=0.1f"))
    assert re.match(r"ERROR input quantisation: model scale 1000000\d\d e-9 zp 0, kws_settings.h scale "
                    r"500000\d\d e-9 zp 0 .*\(blink code 4\)$", first), first


def test_sketch_fatal_error_on_step_state_mismatch(tmp_path, core_objects):
    """A state output whose zero point differs from its input's cannot be copied back."""
    first = _fatal_line(_build_session(tmp_path, core_objects, "-DSTUB_COUNT_OUT_ZP=4"))
    assert re.match(r"ERROR step model state 2: input type 9 2 bytes scale 250000000 e-9 zp 3, output type 9 "
                    r"2 bytes scale 250000000 e-9 zp 4; .*\(blink code 8\)$", first), first


def test_sketch_fatal_error_when_state_staging_is_too_small(tmp_path, core_objects):
    first = _fatal_line(_build_session(tmp_path, core_objects, "-DSTUB_STATE_CYCLE", "-DKWS_STEP_STAGING_BYTES=1"))
    assert re.match(r"ERROR step model: its state copies need 2 bytes of staging .*KWS_STEP_STAGING_BYTES is 1: "
                    r"build with -DKWS_STEP_STAGING_BYTES=2 \(blink code 8\)$", first), first


def test_sketch_without_step_model_data_says_what_to_copy(tmp_path):
    stubs = _stub_dir(tmp_path)
    # kws_settings.h has a step model, the data is missing
    sketch = _sketch(tmp_path, **_session_sketch(step_data=False))
    cpp = _ino_as_cpp(sketch, tmp_path)
    inc = ["-I", str(stubs), "-I", str(sketch)]
    r = subprocess.run(["g++", *FLAGS, "-fsyntax-only", *inc, str(cpp)], capture_output=True, text=True)
    assert r.returncode != 0 and "model_step_data.h is missing" in r.stderr, r.stderr[-2000:]
    ok = subprocess.run(["g++", *FLAGS, "-fsyntax-only", *inc, "-DKWS_WINDOWED_MODEL=1", str(cpp)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="arm-none-eabi-g++ not installed")
@pytest.mark.parametrize("model", ["step", "window"])
def test_sketch_cross_compiles_for_cortex_m4(tmp_path, model):
    """The sketch (with the DWT clock path) compiles as the board's gnu++14, -Wall -Wextra -Werror:
    catches printf formats that differ on ARM (int32_t is long there)."""
    stubs = _stub_dir(tmp_path)
    sketch = _sketch(tmp_path, **_session_sketch())
    r = subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                        "-std=gnu++14", "-Os", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra", "-Werror",
                        "-DSTUB_CMSIS", "-DSTUB_INPUT_SCALE=0.05f", "-I", str(stubs), "-I", str(sketch),
                        *(["-DKWS_WINDOWED_MODEL=1"] if model == "window" else []),
                        "-c", str(_ino_as_cpp(sketch, tmp_path)), "-o", str(tmp_path / "sketch.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
