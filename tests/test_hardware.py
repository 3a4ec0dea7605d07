from llm_energy.pipeline.hardware import GpuInfo, cpu_slug, select_visible, slugify


def test_slugs():
    assert slugify("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert slugify("NVIDIA RTX A6000") == "rtx-a6000"
    assert cpu_slug("AMD EPYC 7B13 64-Core Processor") == "cpu-amd-epyc-7b13"
    assert cpu_slug("Intel(R) Xeon(R) Processor") == "cpu-intel-xeon"


def _gpu(i, uuid):
    return GpuInfo(i, "x", uuid, f"00000000:0{i}:00.0", 1, 300.0, "1")


def test_cuda_visible_devices_by_index_and_uuid():
    gpus = [_gpu(0, "GPU-aaa"), _gpu(1, "GPU-bbb"), _gpu(2, "GPU-ccc")]
    assert [g.index for g in select_visible(gpus, None)] == [0, 1, 2]
    assert [g.index for g in select_visible(gpus, "2,0")] == [2, 0]
    assert [g.index for g in select_visible(gpus, "GPU-bbb")] == [1]
    assert [g.index for g in select_visible(gpus, "1,7,2")] == [1]  # CUDA stops at an invalid entry
    assert select_visible(gpus, "") == []
