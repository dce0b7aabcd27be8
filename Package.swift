// swift-tools-version:6.0
import PackageDescription

/// Release builds are numeric code: let the optimizer assume no overflow checks where we opt in with &+, and keep
/// checks elsewhere. Unsafe flags are not used so the package stays consumable as a dependency.
let package = Package(
    name: "tuss-codec",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TussCodec", targets: ["TussPipeline"]),
        .executable(name: "tuss-codec", targets: ["TussCodecCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // The server and the edge client (tuss-codec serve / stream).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // System libraries, found through pkg-config. A missing one fails the build with the Debian package's name.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f fftw3", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus ogg", providers: [.apt(["libopus-dev", "libogg-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Kernels: tensors, GEMM-lowered ops, the thread pool.
        .target(name: "CKernels"),
        .target(name: "TussTensor", dependencies: ["CBLAS", "CKernels"]),
        // Audio: files, resampling, STFT, Opus.
        .target(name: "TussAudio", dependencies: ["TussTensor", "CBLAS", "CSndFile", "CSoxr", "CFFTW", "COpus"]),
        // Weight files: safetensors, PyTorch checkpoints, YAML configs.
        .target(name: "TussWeights", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Models: pure functions of tensors.
        .target(name: "TussModels", dependencies: ["TussTensor", "TussWeights", "TussAudio"]),
        // Pipelines: file-to-file flows, chunking, codes files, evaluation, pictures.
        .target(name: "TussPipeline", dependencies: ["TussModels", "TussAudio", "TussWeights", "TussTensor", "CZlib"]),
        // Server: HTTP routes, WebSocket streaming, metrics, limits; and the edge client that streams to it. It uses
        // the pipeline's flows; from Models and Audio only prompts and the audio-file reader.
        .target(name: "TussServer", dependencies: [
            "TussPipeline", "TussModels", "TussAudio",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "WSClient", package: "swift-websocket"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(
            name: "TussCodecCLI",
            dependencies: ["TussPipeline", "TussServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // Helpers every test target shares (seeded generators, paths, the built tool). It imports no project module,
        // so even TussTensorTests can depend on it without linking modules it does not test.
        .target(name: "TussTestSupport", path: "Tests/TussTestSupport"),
        .testTarget(name: "TussTensorTests", dependencies: ["TussTensor", "TussTestSupport"]),
        .testTarget(name: "TussAudioTests", dependencies: ["TussAudio", "TussTestSupport"]),
        .testTarget(name: "TussWeightsTests", dependencies: ["TussWeights", "TussTestSupport"]),
        .testTarget(name: "TussModelsTests", dependencies: ["TussModels", "TussWeights", "TussAudio", "TussTestSupport"]),
        .testTarget(name: "TussPipelineTests", dependencies: [
            "TussPipeline", "TussAudio", "TussModels", "TussTensor", "TussWeights", "CZlib", "TussTestSupport",
        ]),
        .testTarget(name: "TussServerTests", dependencies: [
            "TussServer", "TussPipeline", "TussAudio", "TussModels", "TussTestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "WSClient", package: "swift-websocket"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
