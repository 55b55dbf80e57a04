"""ImageResolver: handles, data URIs, and confinement to allowed folders."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from medmo_agent.config import Settings
from medmo_agent.errors import AccessDeniedError, NotFoundError
from medmo_agent.imaging import HANDLE_PREFIX, ImageResolver, load_image

from .conftest import png_bytes


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    secret = tmp_path / "secret"
    (allowed / "sub").mkdir(parents=True)
    secret.mkdir()
    data = png_bytes(np.full((8, 8), 100, dtype=np.uint8))
    (allowed / "a.png").write_bytes(data)
    (allowed / "sub" / "b.png").write_bytes(data)
    (allowed / ".hidden.png").write_bytes(data)
    (allowed / "notes.txt").write_text("not an image")
    (secret / "s.png").write_bytes(data)
    return {"allowed": allowed, "secret": secret, "root": tmp_path}


def _confined(tree) -> ImageResolver:
    return ImageResolver(Settings(), allowed_dirs=[tree["allowed"]], confine=True)


def test_confined_resolver_loads_files_inside_allowed_folders(tree) -> None:
    img = _confined(tree).resolve(tree["allowed"] / "sub" / "b.png")
    assert img.size == (8, 8)
    assert img.handle == str(tree["allowed"] / "sub" / "b.png")


def test_relative_paths_are_looked_up_in_the_allowed_folders(tree) -> None:
    img = _confined(tree).resolve("sub/b.png")
    assert img.handle == str(tree["allowed"] / "sub" / "b.png")


def test_paths_outside_allowed_folders_are_denied_with_the_fix(tree) -> None:
    with pytest.raises(AccessDeniedError) as err:
        _confined(tree).resolve(tree["secret"] / "s.png")
    text = str(err.value)
    assert str(tree["secret"] / "s.png") in text
    assert str(tree["allowed"]) in text
    assert "--allow-dir" in text


def test_dot_dot_traversal_is_denied(tree) -> None:
    sneaky = str(tree["allowed"]) + "/../secret/s.png"
    with pytest.raises(AccessDeniedError):
        _confined(tree).resolve(sneaky)
    with pytest.raises(AccessDeniedError):
        _confined(tree).resolve("../secret/s.png")


def test_symlink_escaping_the_allowed_folder_is_denied(tree) -> None:
    link = tree["allowed"] / "link.png"
    link.symlink_to(tree["secret"] / "s.png")
    with pytest.raises(AccessDeniedError, match="outside the allowed"):
        _confined(tree).resolve(link)
    dir_link = tree["allowed"] / "escape"
    dir_link.symlink_to(tree["secret"], target_is_directory=True)
    with pytest.raises(AccessDeniedError):
        _confined(tree).resolve(dir_link / "s.png")


def test_symlink_that_stays_inside_is_allowed(tree) -> None:
    link = tree["allowed"] / "alias.png"
    link.symlink_to(tree["allowed"] / "a.png")
    assert _confined(tree).resolve(link).size == (8, 8)


def test_confined_resolver_without_allowed_folders_denies_every_path(tree) -> None:
    resolver = ImageResolver(Settings(), allowed_dirs=[], confine=True)
    with pytest.raises(AccessDeniedError, match="none"):
        resolver.resolve(tree["allowed"] / "a.png")


def test_unconfined_resolver_reads_any_path(tree) -> None:
    assert ImageResolver(Settings()).resolve(tree["secret"] / "s.png").size == (8, 8)


def test_data_uris_are_registered_under_a_handle_that_resolves_again(tree) -> None:
    resolver = _confined(tree)
    uri = (
        "data:image/png;base64,"
        + base64.b64encode((tree["allowed"] / "a.png").read_bytes()).decode()
    )
    img = resolver.resolve(uri)
    assert img.handle.startswith(HANDLE_PREFIX)
    assert resolver.resolve(img.handle) is img


def test_loaded_images_are_registered_when_they_have_no_handle(tree) -> None:
    resolver = ImageResolver(Settings())
    img = load_image(tree["allowed"] / "a.png")
    assert img.handle is None
    assert resolver.resolve(img) is img
    assert resolver.get(img.handle) is img


def test_unknown_handle_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="medmo://images/nope"):
        ImageResolver(Settings()).resolve("medmo://images/nope")


def test_registry_drops_least_recently_used_images(tree) -> None:
    resolver = ImageResolver(Settings(), max_registered=2)
    imgs = [load_image(tree["allowed"] / "a.png") for _ in range(3)]
    h0, h1 = resolver.register(imgs[0]), resolver.register(imgs[1])
    resolver.get(h0)  # touch: h1 is now the oldest
    resolver.register(imgs[2])
    assert resolver.get(h0) is imgs[0]
    with pytest.raises(NotFoundError):
        resolver.get(h1)


def test_concurrent_registration_keeps_every_handle_distinct_and_bounded(tree) -> None:
    resolver = ImageResolver(Settings(), max_registered=50)
    img = load_image(tree["allowed"] / "a.png")
    handles: list[str] = []
    lock = threading.Lock()
    start = threading.Event()

    def worker() -> None:
        start.wait()
        for _ in range(40):
            h = resolver.register(_copy(img))
            with lock:
                handles.append(h)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join()
    assert len(set(handles)) == 320
    assert len(resolver._images) == 50


def _copy(img):
    from dataclasses import replace

    return replace(img)


def test_list_images_skips_hidden_non_images_and_escaping_links(tree) -> None:
    (tree["allowed"] / "out.png").symlink_to(tree["secret"] / "s.png")
    hidden_dir = tree["allowed"] / ".cache"
    hidden_dir.mkdir()
    (hidden_dir / "c.png").write_bytes((tree["allowed"] / "a.png").read_bytes())
    found = [p.relative_to(tree["allowed"]).as_posix() for p in _confined(tree).list_images()]
    assert found == ["a.png", "sub/b.png"]


def test_list_images_stops_at_the_limit(tree) -> None:
    for i in range(5):
        os.link(tree["allowed"] / "a.png", tree["allowed"] / f"x{i}.png")
    assert len(list(_confined(tree).list_images(limit=3))) == 3
