"""`upscale_jobs` shared among processes (`esrgan.inference.sharding`): each process upscales its share
of the images and of every video's segments; once all are done, each video is joined by one process.
The files are the same as one process writes: the same frames through the same encoder settings, cut
into the same segments."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack

from esrgan.inference.batch import FrameProgress, TileProgress, upscale_jobs
from esrgan.inference.jobs import FileResult, Job
from esrgan.inference.sharding import Group, Shard, mine
from esrgan.inference.upscaler import Upscaler
from esrgan.inference.video import (
    Segment,
    VideoJob,
    VideoOptions,
    count_frames,
    finish_video,
    open_work,
    plan_video,
    run_segment,
    video_result,
)
from esrgan.io.video import VideoError, is_video_file


def upscale_jobs_shared(
    upscaler: Upscaler,
    jobs: Sequence[Job],
    *,
    shard: Shard,
    group: Group,
    max_pixels: int | None,
    quality: int,
    outscale: float | None,
    video: VideoOptions,
    tile_progress: TileProgress | None = None,
    frame_progress: FrameProgress | None = None,
) -> Iterator[FileResult]:
    """This process's part of the jobs; a result for each image it wrote and each video it joined
    (every process calls it with the same jobs, in the same order)."""
    images = [j for j in jobs if not is_video_file(j.src)]
    videos = [j for j in jobs if is_video_file(j.src)]
    yield from upscale_jobs(
        upscaler,
        mine(images, shard),
        max_pixels=max_pixels,
        quality=quality,
        outscale=outscale,
        tile_progress=tile_progress,
    )
    if not videos:
        return
    options = VideoOptions(**{**video.__dict__, "outscale": outscale})
    planned: dict[int, VideoJob] = {}
    failed: dict[int, str] = {}
    for i, job in enumerate(videos):
        try:
            planned[i] = plan_video(upscaler, job.src, job.dst, options)
        except (VideoError, ValueError, OSError) as exc:
            failed[i] = str(exc)
    if shard.rank == 0:
        # One process prepares the work folders (or keeps them, resuming) before anyone writes there.
        for i, vj in planned.items():
            try:
                open_work(vj, resume=options.resume)
            except OSError as exc:
                failed[i] = f"{vj.dst}: cannot write output ({exc.strerror or exc})"
    group.barrier()
    units: list[tuple[int, Segment]] = [
        (i, seg) for i, vj in planned.items() for seg in vj.segments if not (options.resume and vj.done(seg))
    ]
    group.barrier()  # everyone has listed the units before any is finished
    errors = _run_units(upscaler, planned, mine(units, shard), options, frame_progress)
    failed.update(errors)
    group.barrier()
    for i, job in enumerate(videos):
        if i % shard.world_size != shard.rank:
            continue
        if i in failed:
            yield FileResult(job, failed[i])
            continue
        vj = planned[i]
        try:
            frames = count_frames(vj)
            finish_video(vj)
        except VideoError as exc:
            yield FileResult(job, str(exc))
            continue
        except OSError as exc:
            yield FileResult(job, f"{job.dst}: cannot write output ({exc.strerror or exc})")
            continue
        result = video_result(vj, frames, [])
        yield FileResult(
            job,
            megapixels_in=result.megapixels_in,
            megapixels_out=result.megapixels_out,
            warnings=result.warnings,
        )


def _run_units(
    upscaler: Upscaler,
    planned: dict[int, VideoJob],
    units: list[tuple[int, Segment]],
    options: VideoOptions,
    frame_progress: FrameProgress | None,
) -> dict[int, str]:
    """Run this process's segments under one progress bar; the first error of each video."""
    errors: dict[int, str] = {}
    with ExitStack() as stack:
        advance: Callable[[int], None] | None = None
        if frame_progress is not None and units:
            first = planned[units[0][0]]
            total = sum(seg.frames for _, seg in units)
            advance = stack.enter_context(frame_progress(Job(src=first.src, dst=first.dst), total, 0))
        for i, seg in units:
            if i in errors:
                continue
            try:
                run_segment(upscaler, planned[i], seg, frame_batch=options.frame_batch, on_frames=advance)
            except (VideoError, ValueError) as exc:
                errors[i] = str(exc)
            except OSError as exc:
                errors[i] = f"{planned[i].dst}: cannot write output ({exc.strerror or exc})"
    return errors
