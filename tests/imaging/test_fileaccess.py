"""Opening files safely: regular files only, once, no symlink followed out of the allowed
folders, path length bounded and resolved in linear time, and error texts that say nothing
about what lies outside the allowed folders."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from medmo_agent.config import Settings
from medmo_agent.errors import AccessDeniedError, ImageLoadError, InputError, MedmoError
from medmo_agent.imaging import ImageResolver, load_image

from .conftest import png_bytes

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file types and openat")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    secret = tmp_path / "secret"
    (allowed / "sub").mkdir(parents=True)
    secret.mkdir()
    (allowed / "a.png").write_bytes(png_bytes(np.full((8, 8), 100, dtype=np.uint8)))
    (secret / "s.png").write_bytes(png_bytes(np.full((8, 8), 222, dtype=np.uint8)))
    return {"allowed": allowed, "secret": secret, "root": tmp_path}


def _confined(tree) -> ImageResolver:
    return ImageResolver(Settings(), allowed_dirs=[tree["allowed"]], confine=True)


def _bounded(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_a_fifo_inside_an_allowed_folder_is_refused_without_blocking(tree) -> None:
    fifo = tree["allowed"] / "scan.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="FIFO") as err:
        _bounded(lambda: _confined(tree).resolve(fifo))
    assert "regular file" in err.value.message
    # unconfined (the CLI) too
    with pytest.raises(ImageLoadError, match="FIFO"):
        _bounded(lambda: load_image(fifo))


def test_a_fifo_in_a_series_folder_is_skipped_without_blocking(tree) -> None:
    from .test_series import write_series

    folder = write_series(tree["allowed"] / "ct", 2)
    os.mkfifo(folder / "IM_pipe.dcm")
    image = _bounded(lambda: _confined(tree).resolve(folder))
    assert image.meta.num_slices == 2


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_files_are_refused_before_reading() -> None:
    with pytest.raises(ImageLoadError, match="character device"):
        _bounded(lambda: load_image("/dev/zero"))
    with pytest.raises(ImageLoadError, match="character device"):
        _bounded(lambda: load_image("/dev/zero", allowed_dirs=["/dev"]))


def test_a_symlink_to_a_device_inside_an_allowed_folder_is_refused(tree) -> None:
    (tree["allowed"] / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(AccessDeniedError):
        _bounded(lambda: _confined(tree).resolve(tree["allowed"] / "zero.png"))


def test_links_that_stay_inside_are_followed_by_the_loader_itself(tree) -> None:
    (tree["allowed"] / "alias").symlink_to("sub", target_is_directory=True)
    (tree["allowed"] / "sub" / "b.png").write_bytes((tree["allowed"] / "a.png").read_bytes())
    (tree["allowed"] / "sub" / "up.png").symlink_to("../a.png")
    resolver = _confined(tree)
    assert resolver.resolve(tree["allowed"] / "alias" / "b.png").size == (8, 8)
    assert resolver.resolve("alias/up.png").size == (8, 8)
    # a link through a link back out is still refused
    (tree["allowed"] / "sub" / "out").symlink_to(tree["secret"], target_is_directory=True)
    with pytest.raises(AccessDeniedError):
        resolver.resolve("alias/out/s.png")


def test_a_link_loop_is_refused_with_a_clear_error(tree) -> None:
    (tree["allowed"] / "loop.png").symlink_to("loop.png")
    with pytest.raises(ImageLoadError, match="Too many symbolic links"):
        _confined(tree).resolve(tree["allowed"] / "loop.png")


def test_a_file_swapped_for_a_symlink_while_loading_is_never_read(tree) -> None:
    """Race a swapper that atomically replaces the file with a link to a secret image."""
    target = tree["allowed"] / "x.png"
    regular = tree["allowed"] / ".regular"
    link = tree["allowed"] / ".link"
    regular.write_bytes((tree["allowed"] / "a.png").read_bytes())
    link.symlink_to(tree["secret"] / "s.png")
    os.link(regular, target)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            for source in (link, regular):
                tmp = tree["allowed"] / f".swap{swaps % 2}"
                if source is link:
                    os.symlink(tree["secret"] / "s.png", tmp)
                else:
                    os.link(regular, tmp)
                os.replace(tmp, target)
                swaps += 1

    resolver = _confined(tree)
    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    outcomes = {"inside": 0, "refused": 0}
    try:
        for _ in range(300):
            try:
                image = resolver.resolve(target)
            except (AccessDeniedError, ImageLoadError):
                outcomes["refused"] += 1
                continue
            assert int(image.pixels.max()) == 100, "the secret image was read"
            outcomes["inside"] += 1
    finally:
        stop.set()
        thread.join(10)
    assert swaps > 0 and outcomes["inside"] + outcomes["refused"] == 300


def test_a_folder_swapped_for_a_symlink_while_loading_is_never_read(tree) -> None:
    sub = tree["allowed"] / "sub"
    (sub / "x.png").write_bytes((tree["allowed"] / "a.png").read_bytes())
    (tree["secret"] / "x.png").write_bytes((tree["secret"] / "s.png").read_bytes())
    real = tree["allowed"] / ".realsub"
    os.rename(sub, real)
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            tmp = tree["allowed"] / ".tmp"
            os.symlink(real, tmp)  # an inside link: allowed
            os.replace(tmp, sub)
            os.symlink(tree["secret"], tmp)  # an outside link: must never be read
            os.replace(tmp, sub)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    resolver = _confined(tree)
    try:
        for _ in range(300):
            try:
                image = resolver.resolve(sub / "x.png")
            except (AccessDeniedError, ImageLoadError):
                continue
            assert int(image.pixels.max()) == 100, "the secret image was read"
    finally:
        stop.set()
        thread.join(10)


def test_an_over_long_path_is_refused_at_once_naming_the_limit(tree) -> None:
    path = str(tree["allowed"]) + "/" + "a/" * 200_000 + "x.png"  # 400 KB
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        _confined(tree).resolve(path)
    assert time.perf_counter() - start < 1.0
    assert "max_path_chars" in err.value.message and "MEDMO_MAX_PATH_CHARS" in err.value.fix
    assert len(str(err.value)) < 1000  # the path is not repeated in full
    assert Settings().max_path_chars == 4096


def test_path_resolution_is_linear_in_the_path_length(tree) -> None:
    """Resolving a 400 KB path took 38 s when the cost grew with its square."""
    settings = Settings(max_path_chars=1_000_000)
    resolver = ImageResolver(settings, allowed_dirs=[tree["allowed"]], confine=True)
    deep = str(tree["allowed"]) + "/" + "a/../" * 80_000 + "a.png"  # 400 KB, 160k parts
    start = time.perf_counter()
    assert resolver.resolve(deep).size == (8, 8)
    missing = str(tree["allowed"]) + "/" + "b/" * 200_000 + "x.png"
    with pytest.raises(ImageLoadError, match="No such file"):
        resolver.resolve(missing)
    assert time.perf_counter() - start < 5.0


def _denial(resolver: ImageResolver, path: str) -> str:
    with pytest.raises(MedmoError) as err:
        resolver.resolve(path)
    assert isinstance(err.value, AccessDeniedError), err.value
    return str(err.value).replace(path, "<PATH>")


def test_errors_for_outside_paths_do_not_say_whether_they_exist(tree, monkeypatch) -> None:
    resolver = _confined(tree)
    existing = str(tree["secret"] / "s.png")
    missing = str(tree["secret"] / "nope.png")
    assert _denial(resolver, existing) == _denial(resolver, missing)
    assert _denial(resolver, str(tree["secret"])) == _denial(resolver, str(tree["root"] / "no"))
    # through a link inside the allowed folder, too
    (tree["allowed"] / "l1.png").symlink_to(existing)
    (tree["allowed"] / "l2.png").symlink_to(missing)
    assert _denial(resolver, str(tree["allowed"] / "l1.png")) == _denial(
        resolver, str(tree["allowed"] / "l2.png")
    )


def test_errors_never_show_the_working_directory_pid_or_interpreter(tree, monkeypatch) -> None:
    monkeypatch.chdir(tree["secret"])
    resolver = _confined(tree)
    texts = []
    for path in ("/proc/self/exe", "/proc/self/cwd/s.png", "../secret/s.png", "s.png",
                 "/proc/self/root" + str(tree["secret"] / "s.png")):  # fmt: skip
        with pytest.raises(MedmoError) as err:
            resolver.resolve(path)
        texts.append(str(err.value))
    blob = "\n".join(texts)
    assert str(tree["secret"]) not in blob.replace("/proc/self/root" + str(tree["secret"]), "")
    assert os.path.realpath(sys.executable) not in blob
    assert f"/proc/{os.getpid()}" not in blob and str(os.getpid()) not in blob


def test_unconfined_loading_still_reads_one_regular_file(tree) -> None:
    (tree["root"] / "link.png").symlink_to(tree["secret"] / "s.png")
    assert int(load_image(tree["root"] / "link.png").pixels.max()) == 222
