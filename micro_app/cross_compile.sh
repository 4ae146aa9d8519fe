#!/usr/bin/env bash
# Cross-compiles the portable core for the Nano 33 BLE's Cortex-M4F with the
# board's constraints (no exceptions, no RTTI, -Werror), archives it, and
# prints code/data sizes and the core's static RAM. Exits non-zero on any
# failure. kws_c_api.cpp is the host (ctypes) bridge and is not compiled here.
#
#   micro_app/cross_compile.sh [OUT_DIR]     (default micro_app/build-arm)
# Env: PYTHON (default python3) runs kws_tf.codegen for kws_settings.h;
#      CXX_ARM (default arm-none-eabi-g++).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="${1:-$HERE/build-arm}"
PYTHON="${PYTHON:-python3}"
CXX_ARM="${CXX_ARM:-arm-none-eabi-g++}"
PREFIX="${CXX_ARM%g++}"
AR_ARM="${PREFIX}ar"
SIZE_ARM="${PREFIX}size"
NM_ARM="${PREFIX}nm"

command -v "$CXX_ARM" >/dev/null || { echo "error: $CXX_ARM not found (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)" >&2; exit 2; }

mkdir -p "$OUT/obj" "$OUT/generated"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m kws_tf.codegen --out_dir="$OUT/generated" >/dev/null

CPU_FLAGS=(-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard)
CXXFLAGS=(-O2 -fno-exceptions -fno-rtti -std=c++17 -Wall -Werror
          -ffunction-sections -fdata-sections -I"$HERE/src" -I"$OUT/generated")

SOURCES=()
for f in "$HERE"/src/*.cpp; do
  [[ "$(basename "$f")" == kws_c_api.cpp ]] && continue
  SOURCES+=("$f")
done

OBJS=()
for f in "${SOURCES[@]}"; do
  obj="$OUT/obj/$(basename "${f%.cpp}").o"
  "$CXX_ARM" "${CPU_FLAGS[@]}" "${CXXFLAGS[@]}" -c "$f" -o "$obj"
  # The Arduino mbed core builds sketches as gnu++14 with -Os: check that too.
  "$CXX_ARM" "${CPU_FLAGS[@]}" "${CXXFLAGS[@]}" -std=gnu++14 -Os -fsyntax-only "$f"
  OBJS+=("$obj")
done
rm -f "$OUT/libkws_core_arm.a"
"$AR_ARM" rcs "$OUT/libkws_core_arm.a" "${OBJS[@]}"

FOOT="$OUT/obj/arm_footprint.o"
"$CXX_ARM" "${CPU_FLAGS[@]}" "${CXXFLAGS[@]}" -c "$HERE/tools/arm_footprint.cc" -o "$FOOT"
"$CXX_ARM" "${CPU_FLAGS[@]}" "${CXXFLAGS[@]}" -std=gnu++14 -fsyntax-only "$HERE/tools/arm_footprint.cc"

echo "== arm-none-eabi-size (text = code + const data in flash, data + bss = RAM)"
"$SIZE_ARM" -t "${OBJS[@]}"
echo "== archive $OUT/libkws_core_arm.a"
"$SIZE_ARM" -t "$OUT/libkws_core_arm.a" | tail -n 1
# (mawk has no strtonum: convert the hex sizes in bash.)
echo "== static RAM of the core objects (bytes, Cortex-M4 layout; app = frontend + window + recognizer + buffers)"
while read -r _addr size type name; do
  [[ "$type" =~ ^[bBdD]$ && "$name" == g_footprint_* ]] && printf 'RAM %-28s %d\n' "$name" $((16#$size))
done < <("$NM_ARM" -S -C "$FOOT")
echo "== flash of the generated front-end tables (kws_settings.h, bytes)"
total=0
while read -r _addr size type name; do
  [[ "$type" =~ ^[rR]$ && "$name" == kws::k* ]] && total=$((total + 16#$size))
done < <("$NM_ARM" -S -C "$FOOT")
printf 'FLASH settings_tables %d\n' "$total"
echo "cross-compile OK"
