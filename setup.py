from glob import glob

from setuptools import find_packages, setup

PACKAGE = "alfie_gr00t"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.json") + glob("config/*.xml")),
        (f"share/{PACKAGE}/triton_repository/groot_policy", ["triton_repository/groot_policy/config.pbtxt"]),
        (f"share/{PACKAGE}/triton_repository/groot_policy/1", ["triton_repository/groot_policy/1/model.py"]),
    ],
    install_requires=["setuptools"],
    extras_require={
        # colcon runs pytest for a package whose "test" extra names it (setuptools >= 72 ignores tests_require)
        "test": ["pytest"],
        "plot": ["matplotlib"],
        # TensorRT 10 (JetPack 6 ships 10.3 -- use that one on Jetson) or 11; pycuda for single-graph plans
        "tensorrt": ["tensorrt>=10.3,<12", "pycuda>=2024.1", "onnx>=1.16"],
    },
    zip_safe=True,
    maintainer="Alfie Robotics maintainers",
    maintainer_email="maintainers@alfie-robotics.org",
    description="GR00T N1.6 policy server and safe 100 Hz robot client over ZeroMQ",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "groot_server = alfie_gr00t.nodes.groot_server:main",
            "groot_client = alfie_gr00t.nodes.groot_client:main",
            "groot_sim_robot = alfie_gr00t.nodes.sim_robot:main",
            "groot_build_engine = alfie_gr00t.tools.build_engine:main",
            "groot_check_engine = alfie_gr00t.tools.check_engine:main",
            "groot_bench = alfie_gr00t.tools.bench:main",
            "groot_triton = alfie_gr00t.tools.triton_dev:main",
            "groot_doctor = alfie_gr00t.tools.doctor:main",
            "groot_keys = alfie_gr00t.tools.keys:main",
            "groot_replay = alfie_gr00t.tools.replay:main",
            "groot_export_dataset = alfie_gr00t.tools.export_dataset:main",
            "groot_bag = alfie_gr00t.tools.bag:main",
        ],
    },
)
