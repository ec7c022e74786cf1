"""The image history pool of CycleGAN (Shrivastava et al., CVPR 2017).

The discriminators are trained on generated images drawn partly from a history of earlier
generator outputs rather than only the newest batch, which damps the oscillation between generator
and discriminator. :meth:`ImagePool.query` takes a batch of generated images and returns a batch of
the same shape: while the pool is filling up, each image is stored and returned unchanged; once it
holds ``size`` images, each incoming image is, with probability 0.5, swapped for a random stored
one (which the new image replaces in the pool), and otherwise returned unchanged.

All randomness comes from one ``torch.Generator``, and :meth:`ImagePool.state_dict` holds the
stored images and that generator's state, so a resumed training run draws exactly the same images.
"""

from __future__ import annotations

import torch


class ImagePool:
    """History of up to ``size`` generated images; ``size=0`` makes :meth:`query` a pass-through.

    ``generator`` is the CPU ``torch.Generator`` of the pool's draws; ``None`` makes a new one
    seeded from torch's global RNG (deterministic under ``torch.manual_seed``).
    """

    def __init__(self, size: int, generator: torch.Generator | None = None):
        if size < 0:
            raise ValueError(f"ImagePool: size must be >= 0, got {size}")
        self.size = size
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,)).item()))
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """A batch (B, ...) -> a batch of the same shape, each image new or from the history; detached.

        With ``size=0`` the input itself is returned (not detached).
        """
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                idx = int(torch.randint(self.size, (), generator=self.generator).item())
                out.append(self.images[idx])
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        """The size, the stored images (oldest slot first) and the generator state."""
        return {"size": self.size, "images": list(self.images), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; its size must equal this pool's size."""
        if state["size"] != self.size:
            raise ValueError(f"ImagePool: state has size {state['size']}, this pool has size {self.size}")
        if len(state["images"]) > self.size:
            raise ValueError(f"ImagePool: state holds {len(state['images'])} images, more than size {self.size}")
        self.images = [image.clone() for image in state["images"]]
        self.generator.set_state(state["generator"])
