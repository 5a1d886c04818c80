"""A clock the test moves by hand, for code that takes its time from a `clock` callable."""


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
