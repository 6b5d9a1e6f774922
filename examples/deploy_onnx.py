"""Minimise an exported GradINN surrogate from ONNX Runtime alone, as an optimiser would.

    python examples/deploy_onnx.py surrogate.onnx [--steps 50]

Export the surrogate with its Jacobian first:

    keras_gradinn.export.to_onnx(model, "surrogate.onnx", with_gradient=True)

Nothing here imports TensorFlow or keras_gradinn: the same three calls
(create a session, read the metadata, run) exist in ONNX Runtime's C, C++,
C#, Java and JavaScript APIs.
"""

import argparse
import json
import sys

import numpy as np
import onnxruntime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX file exported with with_gradient=True")
    parser.add_argument("--steps", type=int, default=50, help="gradient-descent steps")
    parser.add_argument("--rate", type=float, default=0.02, help="step, as a fraction of the box")
    args = parser.parse_args()

    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    info = json.loads(session.get_modelmeta().custom_metadata_map["keras_gradinn"])
    bounds = np.array(info["bounds"], dtype=np.float32)
    low, high = bounds[:, 0], bounds[:, 1]
    print(f"inputs {info['inputs']['x']['shape']}, outputs {list(info['outputs'])}")
    print(f"Jacobian layout: {info['jacobian_layout']}")

    x = ((low + high) / 2)[None, :]            # start at the centre of the domain
    y, _ = session.run(["y", "dy_dx"], {"x": x})
    print(f"start  y[0] = {y[0, 0]:.6g}")
    for _ in range(args.steps):
        y, dy_dx = session.run(["y", "dy_dx"], {"x": x})
        # Descend on the first output; scaling by the box width makes the step
        # independent of each input's units, clipping keeps x in the domain.
        direction = dy_dx[0, 0] * (high - low)
        direction /= max(float(np.abs(direction).max()), 1e-12)
        x = np.clip(x - args.rate * (high - low) * direction, low, high).astype(np.float32)
    y, _ = session.run(["y", "dy_dx"], {"x": x})
    print(f"minimiser x = {np.array2string(x[0], precision=4)}")
    print(f"end    y[0] = {y[0, 0]:.6g}")
    print(f"tensorflow imported: {'tensorflow' in sys.modules}")


if __name__ == "__main__":
    main()
