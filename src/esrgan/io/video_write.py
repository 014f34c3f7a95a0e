"""Writing video files through PyAV: `write_video` encodes frames (their timestamps and colour tags
kept) into a file, `join_videos` puts encoded parts one after the other without decoding them and adds
a source's audio and subtitle streams as they are. Both write atomically: the file appears under its
name only once complete."""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.io.video import ColorTags, Frame, VideoError, _reason
from esrgan.utils import atomic_write

VIDEO_CODECS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9")
"""Encoders `--video-codec` offers (all in PyAV's wheels; a build without one says so in one line)."""
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 28, "libvpx-vp9": 24}
"""Constant-quality levels that look like their source at a glance (x264's 18 is the usual 'visually
lossless'); lower is better and larger, 0 is lossless for libx264, libx265 and libvpx-vp9."""
# webm takes VP9/AV1 only, mov H.264/HEVC only (as FFmpeg muxes them); mp4 and mkv take all four.
_WEBM_CODECS = ("libvpx-vp9", "libsvtav1")
_MOV_CODECS = ("libx264", "libx265")
# Fixed, never the machine's core count: an encoder's output bytes can depend on its thread count,
# and a file must be the same whichever process (or machine) encoded it.
ENCODER_THREADS = 4


def default_codec(path: str | os.PathLike[str]) -> str:
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


def check_codec(codec: str, path: str | os.PathLike[str]) -> None:
    """ValueError (one line) when `codec` is unknown, missing from this FFmpeg build, or not allowed in
    `path`'s container."""
    import av

    if codec not in VIDEO_CODECS:
        raise ValueError(f"unknown video codec {codec!r}; use one of {', '.join(VIDEO_CODECS)}")
    try:
        av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        raise ValueError(f"video codec {codec} is not in this build of PyAV/FFmpeg") from None
    ext = Path(path).suffix.lower()
    if ext == ".webm" and codec not in _WEBM_CODECS:
        raise ValueError(f"webm holds {' or '.join(_WEBM_CODECS)} only, not {codec}")
    if ext == ".mov" and codec not in _MOV_CODECS:
        raise ValueError(f"mov holds {' or '.join(_MOV_CODECS)} only, not {codec}")


def output_pix_fmt(codec: str, source: str, bit_depth: int) -> str:
    """The source's pixel format where `codec` encodes it (10-bit stays 10-bit), else the nearest it
    takes: 4:2:0 at 10 bits for a deep source, else 8-bit 4:2:0."""
    import av

    formats = {f.name for f in av.codec.Codec(codec, "w").video_formats or ()}
    # yuvj* are the deprecated full-range names: the range is a tag, kept separately.
    plain = source.replace("yuvj", "yuv")
    if plain in formats and plain.startswith("yuv"):
        return plain
    if bit_depth > 8 and "yuv420p10le" in formats:
        return "yuv420p10le"
    return "yuv420p"


def even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The size rounded up to what the pixel format's chroma subsampling can hold."""
    import av

    fmt = av.VideoFormat(pix_fmt)
    chroma = [c for c in fmt.components if c.is_chroma]
    wx = 2 if chroma and chroma[0].width < fmt.components[0].width else 1
    hx = 2 if chroma and chroma[0].height < fmt.components[0].height else 1
    return width + (-width) % wx, height + (-height) % hx


@dataclass(frozen=True, kw_only=True)
class VideoSpec:
    """How to encode: size, timing, encoder and its settings, pixel format and colour tags."""

    width: int
    height: int
    time_base: Fraction
    """Of the frames' timestamps (the source's, so they are kept as they are)."""
    fps: Fraction
    """Average rate, a hint for rate control."""
    codec: str = "libx264"
    crf: int | None = None
    """None: `DEFAULT_CRF[codec]`."""
    pix_fmt: str = "yuv420p"
    color: ColorTags = field(default_factory=ColorTags)


def _container_options(path: str | os.PathLike[str], time_base: Fraction) -> dict[str, str]:
    # bitexact: no random segment id (Matroska) or library version in the file, so the same frames give
    # the same bytes whichever process wrote them. MP4 and MOV keep an edit list's offsets in the movie
    # time scale (1/1000 s unless told): a part starting at an exact frame time would come back a
    # fraction of a millisecond off.
    if Path(path).suffix.lower() in (".mp4", ".m4v", ".mov"):
        return {"fflags": "+bitexact", "movie_timescale": str(time_base.denominator)}
    return {"fflags": "+bitexact"}


def _encoder_options(codec: str, crf: int) -> dict[str, str]:
    options = {"crf": str(crf)}
    if codec == "libx264":
        options["preset"] = "medium"
    elif codec == "libx265":
        options["x265-params"] = "log-level=error"
    elif codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality: crf alone, no bitrate target
        options["row-mt"] = "1"
    return options


def _to_av_frame(frame: Frame, spec: VideoSpec, deep: bool) -> Any:
    import av
    import av.video.reformatter as sws

    scale = 65535.0 if deep else 255.0
    arr = frame.pixels.detach().float().clamp(0.0, 1.0).mul(scale).round_().permute(1, 2, 0).numpy()
    rgb = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(arr.astype(np.uint16 if deep else np.uint8)),
        format="rgb48le" if deep else "rgb24",
    )
    space = spec.color.sws_space
    out = rgb.reformat(
        format=spec.pix_fmt,
        src_colorspace=space,
        dst_colorspace=space,
        src_color_range=sws.ColorRange.JPEG,
        dst_color_range=spec.color.range or sws.ColorRange.MPEG,
        interpolation=sws.Interpolation.BICUBIC | sws.Interpolation.ACCURATE_RND,
    )
    out.pts = frame.pts
    out.time_base = spec.time_base
    return out


def write_video(path: str | os.PathLike[str], frames: Iterable[Frame], *, spec: VideoSpec) -> int:
    """Encode `frames` (upright RGB, in presentation order, with their timestamps) into `path`'s container;
    returns the number written. The file is written atomically; `VideoError` when it cannot be."""
    import av

    deep = av.VideoFormat(spec.pix_fmt).components[0].bits > 8
    count = 0
    try:
        options = _container_options(path, spec.time_base)
        with atomic_write(path) as tmp, av.open(os.fspath(tmp), mode="w", options=options) as container:
            stream = container.add_stream(spec.codec, rate=spec.fps)
            stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, spec.pix_fmt
            stream.time_base = spec.time_base
            ctx = stream.codec_context
            ctx.time_base = spec.time_base
            ctx.color_range = spec.color.range
            ctx.colorspace = spec.color.space
            ctx.color_primaries = spec.color.primaries
            ctx.color_trc = spec.color.trc
            ctx.thread_count = ENCODER_THREADS
            ctx.options = _encoder_options(
                spec.codec, DEFAULT_CRF[spec.codec] if spec.crf is None else spec.crf
            )
            for frame in frames:
                container.mux(stream.encode(_to_av_frame(frame, spec, deep)))
                count += 1
            container.mux(stream.encode(None))
    except av.FFmpegError as exc:
        raise VideoError(path, f"cannot write video ({_reason(exc)})") from None
    return count


def _time(packet: Any) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None and packet.time_base else 0.0


def _packets(container: Any, streams: Sequence[Any], targets: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    by_index = {s.index: t for s, t in zip(streams, targets, strict=True)}
    for packet in container.demux(list(streams)):
        if packet.size == 0 and packet.dts is None:
            continue  # the demuxer's end-of-stream marker
        yield packet, by_index[packet.stream.index]


def _parts_packets(parts: Sequence[Path], target: Any) -> Iterator[tuple[Any, Any]]:
    import av

    for part in parts:
        with av.open(os.fspath(part)) as container:
            yield from _packets(container, container.streams.video[:1], [target])


def join_videos(
    path: str | os.PathLike[str],
    parts: Sequence[str | os.PathLike[str]],
    *,
    source: str | os.PathLike[str] | None,
) -> None:
    """Write `parts` (videos encoded alike, timestamps continuing from one to the next) one after the other
    into `path` without re-encoding, with `source`'s audio and subtitle streams copied as they are, the
    streams interleaved by time. Atomic: `path` appears only once complete; `VideoError` otherwise."""
    import av

    if not parts:
        raise VideoError(path, "nothing to join")
    part_paths = [Path(p) for p in parts]
    try:
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_write(path))
            with av.open(os.fspath(part_paths[0])) as first:
                template = first.streams.video[0]
                options = _container_options(path, Fraction(template.time_base))
                out = stack.enter_context(av.open(os.fspath(tmp), mode="w", options=options))
                video = out.add_stream_from_template(template, opaque=True)
                video.time_base = template.time_base
            streams: list[Iterator[tuple[Any, Any]]] = [_parts_packets(part_paths, video)]
            if source is not None:
                src = stack.enter_context(av.open(os.fspath(source)))
                extra = [s for s in src.streams if s.type in ("audio", "subtitle")]
                targets = [out.add_stream_from_template(s) for s in extra]
                for s, t in zip(extra, targets, strict=True):
                    t.time_base = s.time_base
                if extra:
                    streams.append(_packets(src, extra, targets))
            _mux_in_order(out, streams)
    except av.FFmpegError as exc:
        raise VideoError(path, f"cannot write video ({_reason(exc)})") from None


def _mux_in_order(out: Any, sources: list[Iterator[tuple[Any, Any]]]) -> None:
    """Mux packets of several time-ordered sources by time (the muxer's interleaving buffer stays small),
    keeping each stream's decode timestamps increasing across the joins."""
    counter = itertools.count()
    keyed = [((_time(p), next(counter), p, t) for p, t in source) for source in sources]
    last_dts: dict[int, int] = {}
    for _, _, packet, target in heapq.merge(*keyed, key=lambda item: (item[0], item[1])):
        packet.stream = target
        if packet.dts is not None:
            previous = last_dts.get(target.index)
            if previous is not None and packet.dts <= previous:
                packet.dts = previous + 1
                if packet.pts is not None and packet.pts < packet.dts:
                    packet.pts = packet.dts
            last_dts[target.index] = packet.dts
        out.mux(packet)
