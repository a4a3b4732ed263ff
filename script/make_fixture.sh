#!/usr/bin/env bash
# Regenerate tests/fixtures/sample.ts: 8 s of H.264 + AAC in MPEG-TS, served in a loop
# by the AceStream engine simulator (tests/simulator).
#
# Video: testsrc2 640x360 @ 25 fps, libx264 main profile, keyframe every second
#        (closed GOPs so every loop starts cleanly), ~1.2 Mbit/s CBR-ish.
# Audio: 1 kHz sine, AAC-LC 48 kHz mono 96 kbit/s, trimmed so that the stream holds
#        exactly 375 AAC frames including the encoder priming frame: audio and video
#        PTS both span exactly 8 s (720000 ticks at 90 kHz) and the loop is seamless.
# Mux:   MPEG-TS, PAT/PMT every 0.1 s, PCR on the video PID about every 40 ms
#        (ffmpeg sets random_access_indicator on keyframe packets).
set -euo pipefail

cd "$(dirname "$0")/.."
out="tests/fixtures/sample.ts"
mkdir -p "$(dirname "$out")"

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25" \
  -f lavfi -i "sine=frequency=1000:sample_rate=48000" \
  -filter:v "trim=end_frame=200" -filter:a "atrim=end_sample=382976" \
  -map 0:v:0 -map 1:a:0 \
  -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p \
  -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 -flags +cgop \
  -b:v 1200k -maxrate 1200k -bufsize 600k \
  -c:a aac -b:a 96k -ac 1 -ar 48000 \
  -f mpegts -mpegts_flags +resend_headers -pat_period 0.1 -pcr_period 20 \
  -metadata service_name="AceStream Simulator" -metadata service_provider="tests" \
  "$out"

size=$(stat -c %s "$out")
echo "wrote $out ($size bytes)"
ffprobe -v error -show_entries stream=codec_name,codec_type,profile,width,height,r_frame_rate,sample_rate \
  -show_entries format=duration,bit_rate -of compact "$out"
if [ "$size" -ge 2000000 ]; then
  echo "fixture too large: $size bytes" >&2
  exit 1
fi
