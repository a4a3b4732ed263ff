"""HLS from the shared broadcast (no Home Assistant imports).

The segmenter is one more consumer of the broadcast's ring, exactly like a TS viewer
(an "internal" viewer): no second engine session, no ffmpeg, no transcoding.

Segments are timed by the video's own timestamps, never by the wall clock: a
segment lasts from its first video frame to the next segment's first frame (or,
before a discontinuity, to its last frame plus one frame). A segment is cut at the
first keyframe (random_access_indicator) past the target duration; a stream that
never flags keyframes is cut at PATs instead. The playlist's target duration is
fixed when the output starts (the segment duration plus a margin for keyframe
intervals longer than it); a segment that would outgrow it is cut early, at a
keyframe if the keyframe interval says the next one would come too late, or at any
frame if none comes in time (counted in the stats).

Each segment starts with PAT + PMT (copies of the stream's latest, with its
counters, so the stream's next tables follow on) and then every elementary stream
at the start of a PES: the tail of an audio PES that started before the cut goes
to the segment where it started, so no PES is split or repeated. An upstream
restart (the broadcaster flags the first keyframe after it with
discontinuity_indicator) starts a new segment marked #EXT-X-DISCONTINUITY;
sequence numbers keep counting. What the source broke off in before it never
ends: the frame in progress and unfinished PES are dropped (with the segment, if
that frame was its only one), so no decoder gets a truncated frame.
"""

from .output import HlsOutput
from .pes import PTS_HZ, PTS_WRAP, pes_timestamps, ticks
from .segmenter import Segmenter
from .window import Segment, SegmentWindow, playlist_target

__all__ = [
    "PTS_HZ",
    "PTS_WRAP",
    "HlsOutput",
    "Segment",
    "SegmentWindow",
    "Segmenter",
    "pes_timestamps",
    "playlist_target",
    "ticks",
]
