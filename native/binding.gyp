{
  "targets": [
    {
      "target_name": "ulysses_native",
      "sources": [
        "<!@(find src -name \"*.cc\" | sort)"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "src"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14", "-O2", "-O0"],
      "cflags": ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unused-parameter", "-Wno-maybe-uninitialized"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-Wno-maybe-uninitialized"],
      "libraries": ["-ldnnl", "-lopenblas", "-l:libgloo.so.0", "-fopenmp"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
