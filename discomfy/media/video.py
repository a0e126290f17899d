"""PyAV work of size-aware delivery: probing videos and encoding H.264 MP4s within a byte budget. Blocking: run
it in a thread.

How it works:
- ``probe_video`` demuxes (without decoding) the first video stream to count its frames and measure its duration
  from packet timestamps — container headers lie or are missing (WEBM) — and reads codec, pixel format and
  whether there is audio. ``probe_animation`` does the same for GIF / animated WebP / APNG through Pillow,
  whose per-frame ``duration`` gives the timing.
- ``transcode`` asks ``plan.plan_video`` for bitrates and dimensions, encodes, and checks the real size; a miss
  lowers the target (``plan.retry_shrink``) up to ``plan.MAX_VIDEO_ATTEMPTS`` times.
- Progress: ``transcode(..., progress=)`` hears (source frames encoded, source frames in all) from the encoding
  loop, through a ``ProgressReporter`` (at most one report per ``PROGRESS_INTERVAL``, only when the count grew,
  and always (total, total) once an encoding fits). The callback runs on the media thread: it must be
  thread-safe (``fit`` hands it to the event loop with ``call_soon_threadsafe``).
- Encoding: libx264 (``preset=veryfast``, average bitrate with a VBV cap so short clips do not overshoot),
  yuv420p, even dimensions, constant frame rate (each frame placed at its own time; frames that would land on
  an occupied slot are dropped); audio resampled to AAC, or left out when the plan says so. The MP4 is written
  to a temporary file, because ``movflags=+faststart`` (moov before mdat, so Discord clients can start playing
  before the download ends) rewrites the file at close, which PyAV cannot do on an in-memory buffer.

Never: run on the event loop, return an encoding over the budget, leave a temporary file behind, or let a PyAV
or Pillow exception out (they become ``MediaError`` in ``errors.reading_media``).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from discomfy.media import plan
from discomfy.media.errors import MediaError, reading_media
from discomfy.media.images import flatten

#: Container flag for a moov atom at the front of the file.
FASTSTART = {"movflags": "+faststart"}
X264_PRESET = "veryfast"
#: AAC accepts these rates; anything else is resampled to 48 kHz.
AAC_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}
#: At most one frame-progress report per this many seconds (the last frame is always reported).
PROGRESS_INTERVAL = 0.1

#: Called from the media thread with (frames done, frames in all); must be thread-safe and quick.
FrameProgress = Callable[[int, int], None]


class ProgressReporter:
    """Throttled, monotone frame progress of one transcode: ``report(done)`` passes ``(done, total)`` on at most
    once per ``interval`` seconds and only when ``done`` grew (a retry's encoding starts again from frame 0 but
    is not reported until it passes what was shown); ``finish()`` always reports ``(total, total)`` once."""

    def __init__(
        self,
        callback: FrameProgress | None,
        total: int,
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback, self.total, self.interval, self.clock = callback, max(1, total), interval, clock
        self.shown = 0
        self.last_at: float | None = None

    def report(self, done: int) -> None:
        done = min(done, self.total)
        if self.callback is None or done <= self.shown:
            return
        now = self.clock()
        if done < self.total and self.last_at is not None and now - self.last_at < self.interval:
            return
        self.shown, self.last_at = done, now
        self.callback(done, self.total)

    def finish(self) -> None:
        self.report(self.total)


@dataclass(frozen=True)
class VideoProbe:
    source: plan.VideoSource
    codec: str
    pix_fmt: str | None
    audio_codec: str | None
    rate: Fraction  # the frame rate frames are placed on when transcoding


@dataclass(frozen=True)
class Transcoded:
    data: bytes
    video_plan: plan.VideoPlan
    source: plan.VideoSource


def probe_video(data: bytes) -> VideoProbe:
    with reading_media("reading a video"), av.open(io.BytesIO(data), "r") as container:
        if not container.streams.video:
            raise MediaError("reading a video: it has no video stream")
        stream = container.streams.video[0]
        frames, first, last = 0, None, None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            frames += 1
            end = packet.pts + (packet.duration or 0)
            first = packet.pts if first is None else min(first, packet.pts)
            last = end if last is None else max(last, end)
        time_base = stream.time_base or Fraction(1, 1000)
        duration = float((last - first) * time_base) if first is not None and last is not None else 0.0
        if duration <= 0 and container.duration:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        ctx = stream.codec_context
        source = plan.VideoSource(ctx.width, ctx.height, duration, frames, audio is not None)
        average = stream.average_rate
        rate = (
            Fraction(average.numerator, average.denominator)
            if average
            else Fraction(source.fps).limit_denominator(1001)
        )
        if rate > plan.MAX_FPS:
            rate = Fraction(int(plan.MAX_FPS))
        pix_fmt = ctx.format.name if ctx.format is not None else None
        return VideoProbe(source, ctx.name, pix_fmt, audio, rate)


def probe_animation(data: bytes) -> VideoProbe:
    with reading_media("reading an animation"), Image.open(io.BytesIO(data)) as im:
        delays = []
        for index in range(int(getattr(im, "n_frames", 1))):
            im.seek(index)
            im.load()  # WebP sets a frame's duration only once it is loaded
            delays.append(plan.frame_delay_ms(im.info.get("duration")))
        source = plan.VideoSource(im.width, im.height, sum(delays) / 1000, len(delays), has_audio=False)
        rate = Fraction(max(1, min(50, round(1000 / min(delays)))))
        return VideoProbe(source, im.format or "image", None, None, rate)


def transcode(
    data: bytes, probe: VideoProbe, budget: int, animation: bool, progress: FrameProgress | None = None
) -> Transcoded | None:
    """An H.264 MP4 of ``data`` within ``budget`` bytes, or None when no attempt fits. ``progress`` hears
    (frames encoded, frames in all), throttled and monotone, ending at (total, total) when an encoding fits."""
    reporter = ProgressReporter(progress, probe.source.frames)
    shrink = 1.0
    for _ in range(plan.MAX_VIDEO_ATTEMPTS):
        video_plan = plan.plan_video(probe.source, budget, shrink)
        if video_plan is None:
            return None
        with reading_media("transcoding a video"):
            encoded = encode_mp4(data, probe, video_plan, animation, reporter)
        if len(encoded) <= budget:
            reporter.finish()
            return Transcoded(encoded, video_plan, probe.source)
        shrink = plan.retry_shrink(shrink, len(encoded), budget)
    return None


def encode_mp4(
    data: bytes,
    probe: VideoProbe,
    video_plan: plan.VideoPlan,
    animation: bool,
    reporter: ProgressReporter | None = None,
) -> bytes:
    with tempfile.TemporaryDirectory(prefix="discomfy-media-") as folder:
        path = Path(folder) / "out.mp4"
        with av.open(str(path), "w", format="mp4", options=FASTSTART) as out:
            bitrate = video_plan.video_bitrate
            vstream = out.add_stream(
                "libx264",
                rate=probe.rate,
                options={"preset": X264_PRESET, "maxrate": str(int(bitrate * 1.5)), "bufsize": str(bitrate * 2)},
            )
            vstream.width, vstream.height = video_plan.width, video_plan.height
            vstream.pix_fmt = "yuv420p"
            vstream.bit_rate = bitrate
            encoder = _FrameEncoder(out, vstream, probe.rate, video_plan, reporter)
            if animation:
                encoder.run_animation(data)
            else:
                encoder.run_video(data)
        return path.read_bytes()


class _FrameEncoder:
    """Places decoded frames on the output's constant frame rate and muxes what the encoders give back."""

    def __init__(
        self,
        out: av.container.OutputContainer,
        vstream: av.VideoStream,
        rate: Fraction,
        p: plan.VideoPlan,
        reporter: ProgressReporter | None = None,
    ) -> None:
        self.out, self.vstream, self.rate, self.plan = out, vstream, rate, p
        self.reporter = reporter
        self.last_pts = -1
        self.start: float | None = None
        self.frames_in = 0  # source frames seen, for progress (some may be dropped from the output)

    def put_video(self, image: av.VideoFrame, at: float) -> None:
        self.frames_in += 1
        if self.reporter is not None:
            self.reporter.report(self.frames_in)
        self.start = at if self.start is None else self.start
        pts = round((at - self.start) * self.rate)
        if pts <= self.last_pts:
            return  # two frames on one slot of the output's rate: keep the first
        self.last_pts = pts
        frame = image.reformat(self.plan.width, self.plan.height, "yuv420p", interpolation="BICUBIC")
        frame.pts = pts
        frame.time_base = Fraction(1) / self.rate
        self.out.mux(self.vstream.encode(frame))

    def run_animation(self, data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as im:
            at = 0.0
            for index in range(int(getattr(im, "n_frames", 1))):
                im.seek(index)
                im.load()
                picture = av.VideoFrame.from_image(flatten(im))  # type: ignore[no-untyped-call]  # untyped in PyAV's stub
                self.put_video(picture, at)
                at += plan.frame_delay_ms(im.info.get("duration")) / 1000
        self.out.mux(self.vstream.encode(None))

    def run_video(self, data: bytes) -> None:
        with av.open(io.BytesIO(data), "r") as container:
            vin = container.streams.video[0]
            vin.thread_type = "AUTO"
            ain = container.streams.audio[0] if container.streams.audio and not self.plan.drops_audio else None
            astream = self._audio_stream(ain) if ain is not None else None
            count = 0
            for frame in self._decoded(container, vin, ain):
                if isinstance(frame, av.VideoFrame):
                    at = frame.time if frame.time is not None else count / float(self.rate)
                    self.put_video(frame, at)
                    count += 1
                elif astream is not None:
                    frame.pts = None  # the encoder numbers its own samples; input gaps are not ours to keep
                    self.out.mux(astream.encode(frame))
        self.out.mux(self.vstream.encode(None))
        if astream is not None:
            self.out.mux(astream.encode(None))

    def _audio_stream(self, ain: av.AudioStream) -> av.AudioStream:
        rate = ain.codec_context.sample_rate if ain.codec_context.sample_rate in AAC_RATES else 48000
        stream = self.out.add_stream("aac", rate=rate)
        stream.layout = "mono" if ain.codec_context.channels == 1 else "stereo"
        stream.bit_rate = self.plan.audio_bitrate
        return stream

    @staticmethod
    def _decoded(
        container: av.container.InputContainer, vin: av.VideoStream, ain: av.AudioStream | None
    ) -> Iterator[av.VideoFrame | av.AudioFrame]:
        streams = [vin] if ain is None else [vin, ain]
        for packet in container.demux(*streams):
            yield from packet.decode()  # type: ignore[misc]  # PyAV types decode() per stream kind loosely
