# The CPU variant for node-gyp-based tooling (electron-rebuild, `node-gyp rebuild`, bundlers that rebuild addons).
# The package itself builds with cmake-js (CMakeLists.txt, which also builds the CUDA variant); this file mirrors
# its CPU build: the same sources (scripts/gyp-sources.js applies CMakeLists.txt's rule), defines and flags
# (-O3 -DNDEBUG, gnu++17 from node-gyp's common.gypi, as CMake's default), and the output build/Release/nla_ar.node,
# where node-gyp-build looks first.
# Offline, point node-gyp at local headers: `node-gyp rebuild --nodedir=/usr` (Debian's nodejs-dev puts them there).
{
  "targets": [
    {
      "target_name": "nla_ar",
      "sources": ["<!@(node scripts/gyp-sources.js)"],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NDEBUG",
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-O3", "-fexceptions", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "conditions": [
        ["OS=='linux'", { "ldflags": ["-pthread", "-Wl,--exclude-libs,ALL", "-Wl,--as-needed"] }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_ENABLE_CPP_RTTI": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }],
        ["OS=='win'", {
          "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "RuntimeTypeInfo": "true", "AdditionalOptions": ["/std:c++17"] } }
        }]
      ]
    }
  ]
}
