{
  "variables": {
    "ua_cuda_lib": "<(module_root_dir)/build/cuda/libua_cuda.a",
    "ua_with_cuda": "<!(test -f build/cuda/libua_cuda.a && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "ulysses_native",
      "sources": [
        "<!@(find src -name \"*.cc\" | sort)"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "src",
        "."
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14", "-O2", "-O0"],
      "cflags": ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unused-parameter", "-Wno-maybe-uninitialized"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-Wno-maybe-uninitialized"],
      "libraries": ["-ldnnl", "-lopenblas", "-l:libgloo.so.0", "-fopenmp", "-ldl"],
      "ldflags": ["-fopenmp"],
      "conditions": [
        # The CUDA engine: scripts/setup.sh builds native/cuda into build/cuda/libua_cuda.a when
        # nvcc is present (static CUDA runtime beside it; cuBLAS and NCCL are dlopened at run time).
        # Without it the addon holds cuda/stub.cc, whose availability() says CUDA was not built.
        ["ua_with_cuda==1", {
          "defines": ["UA_WITH_CUDA=1"],
          "libraries": ["<(ua_cuda_lib)", "<(module_root_dir)/build/cuda/libcudart_static.a", "-lrt", "-lpthread"]
        }, {
          "sources": ["cuda/stub.cc"]
        }]
      ]
    }
  ]
}
