"""Test support: a tiny random Qwen3-VL checkpoint built offline (:mod:`.tiny`)."""
