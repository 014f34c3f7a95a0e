"""Upscaling a video file: frames streamed from the decoder in small batches through the `Upscaler`
(the same precision, runtime, tiling and memory policy as images), encoded in segments.

Each segment (`segment_seconds` of frames, cut at frame timestamps) is encoded on its own into a work
folder beside the output (`.NAME.parts/`), atomically, so a finished segment is a complete file. A run
with `resume` keeps the segments of an earlier run with the same settings and does the rest; the
output appears under its name only once every segment is done and they are joined without re-encoding,
with the source's audio and subtitles copied as they are. Memory holds a batch of frames (and the
encoder's look-ahead), never the video.

The steps are separate (`plan_video`, `open_work`, `run_segment`, `finish_video`) so that processes
sharing a long video (`esrgan.inference.sharding`) can each encode their segments and one join them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from esrgan.inference.resize import output_size, resize_pixels
from esrgan.inference.upscaler import Upscaler
from esrgan.io.video import Frame, VideoError, VideoInfo, probe_video, read_video
from esrgan.io.video_write import (
    VideoSpec,
    check_codec,
    default_codec,
    even_size,
    join_videos,
    output_pix_fmt,
    write_video,
)
from esrgan.utils import atomic_write

DEFAULT_SEGMENT_SECONDS = 10.0
"""A kill loses at most this much finished video; each segment costs a keyframe."""
DEFAULT_FRAME_BATCH = 4
# Parts are MP4 whatever the output: it holds all four codecs and, with its time scale set to the
# source's, gives every timestamp back exactly.
_PART_EXT = ".mp4"


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """How `esrgan upscale` encodes a video."""

    codec: str | None = None
    """Encoder (see `esrgan.io.video_write.VIDEO_CODECS`); None: libx264, libvpx-vp9 for webm."""
    crf: int | None = None
    """Constant quality; None: the encoder's default in `DEFAULT_CRF`."""
    outscale: float | None = None
    """Final scale relative to the input; None: the model's."""
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    frame_batch: int = DEFAULT_FRAME_BATCH
    """Frames per call to the upscaler."""
    resume: bool = False
    """Keep the finished segments of an interrupted run with the same settings."""
    model: str = ""
    """What the upscaler runs (its name or file), part of the settings a resumed run must match."""

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0:
            raise ValueError(f"segment length must be above 0 seconds, got {self.segment_seconds}")
        if self.frame_batch < 1:
            raise ValueError(f"frame batch must be at least 1, got {self.frame_batch}")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be in 0..63, got {self.crf}")


@dataclass(frozen=True)
class Segment:
    index: int
    start_pts: int
    stop_pts: int | None
    """Exclusive; None: to the end."""
    frames: int


@dataclass(frozen=True, kw_only=True)
class VideoJob:
    """A planned video: what the source holds, how the output is encoded, its segments and work folder."""

    src: Path
    dst: Path
    info: VideoInfo
    spec: VideoSpec
    segments: list[Segment]
    settings: dict[str, object] = field(repr=False)

    @property
    def work_dir(self) -> Path:
        return work_dir(self.dst)

    def part(self, segment: Segment) -> Path:
        return self.work_dir / f"seg-{segment.index:05d}{_PART_EXT}"

    def empty_marker(self, segment: Segment) -> Path:
        return self.work_dir / f"seg-{segment.index:05d}.empty"

    def done(self, segment: Segment) -> bool:
        return self.part(segment).is_file() or self.empty_marker(segment).is_file()


def work_dir(dst: Path) -> Path:
    """The folder beside `dst` holding its finished segments (hidden: folder scans skip it)."""
    return dst.parent / f".{dst.name}.parts"


def plan_segments(info: VideoInfo, seconds: float) -> list[Segment]:
    """Cut the frames into runs of about `seconds` each, at frame timestamps."""
    per = max(1, round(float(info.fps) * seconds))
    pts = info.pts
    starts = list(range(0, len(pts), per))
    return [
        Segment(
            index=i,
            start_pts=pts[s],
            stop_pts=pts[s + per] if s + per < len(pts) else None,
            frames=min(per, len(pts) - s),
        )
        for i, s in enumerate(starts)
    ]


def plan_video(upscaler: Upscaler, src: Path, dst: Path, options: VideoOptions) -> VideoJob:
    """Probe `src` and decide the output's encoding and segments (reads the file; writes nothing).
    `VideoError` for a file that is not a readable video; ValueError for a codec the output cannot take."""
    info = probe_video(src)
    codec = options.codec or default_codec(dst)
    check_codec(codec, dst)
    pix_fmt = output_pix_fmt(codec, info.pix_fmt, info.bit_depth)
    width, height = output_size(info.width, info.height, options.outscale or upscaler.scale)
    width, height = even_size(width, height, pix_fmt)
    spec = VideoSpec(
        width=width,
        height=height,
        time_base=info.time_base,
        fps=info.fps,
        codec=codec,
        crf=options.crf,
        pix_fmt=pix_fmt,
        color=info.color,
    )
    stat = src.stat()
    settings: dict[str, object] = {
        "source": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "frames": info.frames},
        "model": options.model,
        "upscaler": {"scale": upscaler.scale, "precision": upscaler.precision, "tile": str(upscaler.tile)},
        "spec": {k: str(v) for k, v in asdict(spec).items()},
        "segment_seconds": options.segment_seconds,
    }
    return VideoJob(
        src=src,
        dst=dst,
        info=info,
        spec=spec,
        segments=plan_segments(info, options.segment_seconds),
        settings=settings,
    )


def open_work(job: VideoJob, *, resume: bool) -> bool:
    """Make the work folder ready; with `resume`, keep what an earlier run with the same settings
    finished. Returns whether earlier segments were kept."""
    folder = job.work_dir
    manifest = folder / "settings.json"
    if resume and manifest.is_file():
        try:
            if json.loads(manifest.read_text(encoding="utf-8")) == job.settings:
                return True
        except (OSError, ValueError):
            pass
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with atomic_write(manifest) as tmp:
        tmp.write_text(json.dumps(job.settings, indent=1, sort_keys=True), encoding="utf-8")
    return False


def upscale_frames(upscaler: Upscaler, x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB frames through the model; a one-channel model sees each colour as a grey image."""
    if upscaler.in_channels == 3:
        return upscaler.upscale(x)
    if upscaler.in_channels == 1:
        n, c, h, w = x.shape
        y = upscaler.upscale(x.reshape(n * c, 1, h, w))
        return y.reshape(n, c, *y.shape[-2:])
    raise ValueError(f"model takes {upscaler.in_channels} input channels; only 1 or 3 work for video")


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_segment(
    upscaler: Upscaler,
    job: VideoJob,
    segment: Segment,
    *,
    frame_batch: int = DEFAULT_FRAME_BATCH,
    on_frames: Callable[[int], None] | None = None,
    on_damage: Callable[[str], None] | None = None,
) -> int:
    """Decode, upscale and encode one segment into the work folder (atomically); returns its frames.
    A segment past damage in the source decodes no frame and leaves a marker instead of a file."""
    spec = job.spec
    frames = read_video(job.src, start_pts=segment.start_pts, stop_pts=segment.stop_pts, on_damage=on_damage)

    def upscaled() -> Iterator[Frame]:
        for batch in _batches(frames, frame_batch):
            y = upscale_frames(upscaler, torch.stack([f.pixels for f in batch]))
            y = resize_pixels(y, height=spec.height, width=spec.width)
            yield from (Frame(pts=f.pts, pixels=p) for f, p in zip(batch, y, strict=True))
            if on_frames is not None:
                on_frames(len(batch))

    stream = upscaled()
    first = next(stream, None)
    if first is None:
        job.empty_marker(segment).touch()
        return 0
    try:
        return write_video(job.part(segment), _chain(first, stream), spec=spec)
    except VideoError as exc:
        raise VideoError(job.dst, exc.reason) from None


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest


def finish_video(job: VideoJob) -> int:
    """Join the finished segments into the output (atomically), copy the source's audio and subtitles,
    remove the work folder; returns the output's frame count."""
    missing = [s.index for s in job.segments if not job.done(s)]
    if missing:
        raise VideoError(
            job.dst, f"segment {missing[0]} of {len(job.segments)} was not finished; nothing joined"
        )
    parts = [job.part(s) for s in job.segments if job.part(s).is_file()]
    if not parts:
        raise VideoError(job.src, "no frame could be decoded")
    join_videos(job.dst, parts, source=job.src if job.info.extra_streams else None)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    return sum(s.frames for s in job.segments if job.part(s) in parts)


@dataclass(frozen=True)
class VideoResult:
    frames: int
    """Frames written."""
    megapixels_in: float
    megapixels_out: float
    warnings: tuple[str, ...] = ()


def upscale_video(
    upscaler: Upscaler,
    src: Path,
    dst: Path,
    *,
    options: VideoOptions,
    on_start: Callable[[VideoJob, int], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Upscale `src` into `dst` (segments, resume, join); `on_start(job, frames_already_done)` once
    planned, `on_frames(n)` as frames are done. `VideoError`/ValueError (one line) when it cannot."""
    job = plan_video(upscaler, src, dst, options)
    kept = open_work(job, resume=options.resume)
    done = sum(s.frames for s in job.segments if kept and job.done(s))
    if on_start is not None:
        on_start(job, done)
    damage: list[str] = []
    for segment in job.segments:
        if kept and job.done(segment):
            continue
        run_segment(
            upscaler,
            job,
            segment,
            frame_batch=options.frame_batch,
            on_frames=on_frames,
            on_damage=damage.append,
        )
    frames = count_frames(job)
    finish_video(job)
    return video_result(job, frames, damage)


def count_frames(job: VideoJob) -> int:
    """Frames in the finished parts (read from their packets)."""
    return sum(probe_video(job.part(s)).frames for s in job.segments if job.part(s).is_file())


def video_result(job: VideoJob, frames: int, damage: list[str]) -> VideoResult:
    warnings: tuple[str, ...] = ()
    if frames < job.info.frames or job.info.damage is not None:
        reason = damage[0] if damage else job.info.damage or "frames could not be decoded"
        warnings = (
            f"{job.src}: truncated or damaged: wrote the {frames} frames before the damage; {reason}",
        )
    pixels_in = job.info.width * job.info.height * frames / 1e6
    pixels_out = job.spec.width * job.spec.height * frames / 1e6
    return VideoResult(frames=frames, megapixels_in=pixels_in, megapixels_out=pixels_out, warnings=warnings)
