"""What the tests share and are not tests themselves: fakes for what cannot run here (TensorRT, CUDA,
Isaac-GR00T), test doubles of the other side of a wire, data makers and harnesses. Test modules
import from here (`from support.x import y`); no test module imports another."""
