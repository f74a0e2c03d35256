"""The microworld: a synthetic contest domain and a tiny teacher/student model pair built on the CPU."""
