"""A stand-in for a kill, for the tests of both training loops."""

import keras


class InterruptAtEpoch(keras.callbacks.Callback):
    """The process dies as epoch ``at`` begins."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt
