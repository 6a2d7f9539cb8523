"""Stand-ins for the hardware this machine lacks, shared by tests/ and benchmarks/: a fake Jetson sysfs tree of
INA3221 rails (sysfs.py) and TensorRT plans that run their graphs with ONNX Runtime on a counted stand-in GPU
(tensorrt.py). Not installed: they exist to drive the real code where the real device is absent."""
