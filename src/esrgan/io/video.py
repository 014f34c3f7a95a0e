"""Reading video files through PyAV (FFmpeg's libraries inside the wheel, no system `ffmpeg`):
`probe_video` (what the file holds, from its packets without decoding them) and `read_video` (frames as
RGB float tensors with their timestamps, rotation applied). Writing and joining: `esrgan.io.video_write`.

PyAV is imported inside the functions, so importing this module loads no codec library.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

# Re-exported: they lived here before `formats`, which needs no torch.
from esrgan.io.formats import OUTPUT_VIDEO_EXTENSIONS as OUTPUT_VIDEO_EXTENSIONS
from esrgan.io.formats import VIDEO_EXTENSIONS as VIDEO_EXTENSIONS
from esrgan.io.formats import is_video_file as is_video_file

if TYPE_CHECKING:
    import av.container
    import av.video.frame

# FFmpeg's AVColorSpace values that swscale converts with (the others fall back to its BT.601 default).
_SWS_COLORSPACE = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


class VideoError(ValueError):
    """A video cannot be read or written; the message is `<file>: <reason>` on one line."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


@dataclass(frozen=True, kw_only=True)
class ColorTags:
    """A stream's colour description (FFmpeg's enum values), kept from input to output."""

    range: int = 0
    """1 limited (MPEG), 2 full (JPEG), 0 unspecified (read as limited)."""
    space: int = 2
    """Matrix coefficients (1 BT.709, 5/6 BT.601, 9 BT.2020, 2 unspecified)."""
    primaries: int = 2
    trc: int = 2

    @property
    def sws_space(self) -> int | None:
        """The matrix swscale should convert with (None: its default, BT.601, as FFmpeg's)."""
        return _SWS_COLORSPACE.get(self.space)


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    """What a video file holds, from its headers and packets (no frame decoded but the first)."""

    width: int
    """As displayed: rotation applied."""
    height: int
    pts: tuple[int, ...]
    """Presentation timestamps of the video frames, in order (units of `time_base`)."""
    time_base: Fraction
    fps: Fraction
    """Average frame rate (timestamps are kept, so variable frame rates survive)."""
    rotation: int
    """Clockwise degrees the frames are turned to be shown upright (0, 90, 180, 270)."""
    pix_fmt: str
    bit_depth: int
    color: ColorTags
    codec: str
    extra_streams: int
    """Audio and subtitle streams, copied to the output as they are."""
    damage: str | None = None
    """Why the frames end early (the packets stop before the file's declared duration, or cannot be
    read past a point), or None for a whole file."""

    @property
    def frames(self) -> int:
        return len(self.pts)


@dataclass(frozen=True)
class Frame:
    """A decoded frame: (3,H,W) float32 RGB in [0, 1], upright, and its presentation timestamp."""

    pts: int
    pixels: torch.Tensor


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    import av

    try:
        container = av.open(os.fspath(path), mode="r")
    except FileNotFoundError:
        raise VideoError(path, "no such file") from None
    except av.FFmpegError as exc:
        raise VideoError(path, f"not a video FFmpeg can read ({_reason(exc)})") from None
    except OSError as exc:
        raise VideoError(path, f"cannot read ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(path, "not a video (no video stream)")
    return container


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _bit_depth(pix_fmt: str) -> int:
    import av

    fmt = av.VideoFormat(pix_fmt)
    return max((c.bits for c in fmt.components), default=8)


def _rotation(frame: av.video.frame.VideoFrame) -> int:
    # PyAV gives the display matrix's counter-clockwise angle; players turn the picture clockwise by it.
    return round(-getattr(frame, "rotation", 0) / 90.0) % 4 * 90


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read `path`'s stream headers and video packets (not decoded, except the first frame for its
    rotation): size, timestamps, frame rate, pixel format and colour tags. `VideoError` for a file that
    is not a video or has no readable frame."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        pts: list[int] = []
        damage = None
        try:
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None and packet.size:
                    pts.append(int(stamp))
        except (av.FFmpegError, OSError) as exc:
            damage = f"unreadable past a point ({_reason(exc)})"
        if not pts:
            raise VideoError(path, "not a video (no video frames)")
        rotation = _first_rotation(path)
        width, height = (ctx.width, ctx.height) if rotation in (0, 180) else (ctx.height, ctx.width)
        time_base = stream.time_base or Fraction(1, 90000)
        stamps = sorted(set(pts))
        if len(stamps) > 1 and stamps[-1] > stamps[0]:
            # From the timestamps: some containers' declared average (Matroska's) is the time base.
            rate = Fraction(len(stamps) - 1) / ((stamps[-1] - stamps[0]) * Fraction(time_base))
            rate = rate.limit_denominator(1001)
        else:
            rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
        end = float((stamps[-1] - stamps[0]) * Fraction(time_base)) + 1 / float(rate)
        declared = container.duration / 1e6 if container.duration else None
        if damage is None and declared is not None and end < declared - 2 / float(rate) - 0.1:
            # A cut-off file: its header promises more than its packets hold.
            damage = f"its frames end at {end:.2f} s of the {declared:.2f} s its header declares"
        pix_fmt = ctx.format.name if ctx.format is not None else "yuv420p"
        color = ColorTags(
            range=int(ctx.color_range or 0),
            space=int(ctx.colorspace or 2),
            primaries=int(ctx.color_primaries or 2),
            trc=int(ctx.color_trc or 2),
        )
        extra = sum(1 for s in container.streams if s.type in ("audio", "subtitle"))
        return VideoInfo(
            width=width,
            height=height,
            pts=tuple(stamps),
            time_base=Fraction(time_base),
            fps=Fraction(rate),
            rotation=rotation,
            pix_fmt=pix_fmt,
            bit_depth=_bit_depth(pix_fmt),
            color=color,
            codec=ctx.name,
            extra_streams=extra,
            damage=damage,
        )


def _first_rotation(path: str | os.PathLike[str]) -> int:
    import av

    with _open(path) as container:
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except (av.FFmpegError, OSError):
            return 0
        return 0 if frame is None else _rotation(frame)


def _to_tensor(frame: av.video.frame.VideoFrame, deep: bool) -> torch.Tensor:
    import av.video.reformatter as sws

    space = _SWS_COLORSPACE.get(int(frame.colorspace or 2))
    rgb = frame.reformat(
        format="rgb48le" if deep else "rgb24",
        src_colorspace=space,
        dst_colorspace=space,
        src_color_range=int(frame.color_range or 1),
        dst_color_range=sws.ColorRange.JPEG,
        interpolation=sws.Interpolation.BICUBIC | sws.Interpolation.ACCURATE_RND,
    )
    arr: np.ndarray[Any, Any] = rgb.to_ndarray()
    pixels = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)
    return pixels.div_(65535.0 if deep else 255.0)


def _upright(pixels: torch.Tensor, rotation: int) -> torch.Tensor:
    # torch.rot90 with k=-1 turns clockwise by 90 degrees.
    return pixels if rotation == 0 else torch.rot90(pixels, k=-(rotation // 90), dims=(1, 2)).contiguous()


def read_video(
    path: str | os.PathLike[str],
    *,
    start_pts: int | None = None,
    stop_pts: int | None = None,
    on_damage: Callable[[str], None] | None = None,
) -> Iterator[Frame]:
    """Decode `path`'s frames with `start_pts <= pts < stop_pts` (None: from the start / to the end),
    streamed one at a time, as upright RGB (16-bit sources give 16-bit precision).

    Damage after the first frame ends the stream early: the frames before it are yielded and
    `on_damage(reason)` is called once. `VideoError` when the file cannot be opened at all.
    """
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        deep = _bit_depth(stream.codec_context.format.name if stream.codec_context.format else "yuv420p") > 8
        if start_pts is not None:
            # To the keyframe at or before the start; the frames before `start_pts` are decoded, not kept.
            container.seek(start_pts, stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                if on_damage is not None:
                    on_damage(f"damaged after the frames read ({_reason(exc)})")
                return
            pts = frame.pts
            if pts is None or (start_pts is not None and pts < start_pts):
                continue
            if stop_pts is not None and pts >= stop_pts:
                return
            yield Frame(pts=int(pts), pixels=_upright(_to_tensor(frame, deep), _rotation(frame)))
