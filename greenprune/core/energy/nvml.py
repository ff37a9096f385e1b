"""Which NVML device a CUDA device is, and whether another process uses it."""

from __future__ import annotations

import os


class GpuProcessWatch:
    """Whether another process holds a compute context on the metered GPU (via NVML)."""

    def __init__(self, nvml_index: int | None, note: str) -> None:
        self._handle = None
        self.note = note
        if nvml_index is None:
            return
        try:
            import pynvml

            self._pynvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index)
            pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
            self.note = "checked with NVML's process list"
        except Exception as error:  # any NVML failure: cannot check
            self._handle = None
            self.note = f"not checked (NVML process list unavailable: {error})"

    @property
    def watching(self) -> bool:
        """Whether the GPU's process list can be read (else nothing is checked)."""
        return self._handle is not None

    def others_present(self) -> bool:
        """Whether a process other than this one holds a context on the GPU."""
        if self._handle is None:
            return False
        try:
            pids = [p.pid for p in self._pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle)]
        except Exception:  # a failed poll is no evidence
            return False
        own = os.getpid()
        if own in pids:
            return any(pid != own for pid in pids)
        # In a container NVML reports host PIDs: our own context is then one unnamed entry.
        return len(pids) > 1


def cuda_index(device: str) -> int | None:
    """The CUDA index of ``cuda`` or ``cuda:N``; None for other devices."""
    if not device.startswith("cuda"):
        return None
    _, _, index = device.partition(":")
    return int(index) if index else 0


def nvml_index(cuda_index: int | None) -> tuple[int | None, str]:
    """NVML index of a CUDA device (CUDA and NVML may order devices differently)."""
    if cuda_index is None:
        return None, "not applicable (work runs on the CPU)"
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            nvml_uuid = pynvml.nvmlDeviceGetUUID(handle)
            nvml_uuid = nvml_uuid.decode() if isinstance(nvml_uuid, bytes) else nvml_uuid
            if nvml_uuid.removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                return index, ""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        entries = [v.strip() for v in visible.split(",") if v.strip()]
        if cuda_index < len(entries) and entries[cuda_index].isdigit():
            return int(entries[cuda_index]), ""
        return cuda_index, ""
    except Exception as error:  # no NVML: nothing to watch
        return None, f"not checked (pynvml unavailable: {error})"
