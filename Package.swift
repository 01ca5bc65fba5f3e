// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-bert",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "BertTokenizer", targets: ["BertTokenizer"]),
        .library(name: "BertCompute", targets: ["BertCompute"]),
        .library(name: "Bert", targets: ["Bert"]),
        .library(name: "BertHub", targets: ["BertHub"]),
        .executable(name: "bert", targets: ["BertCLI"]),
    ],
    // Data-parallel training over MPI (`bert pretrain` / `bert finetune` under mpirun) is opt-in:
    // `swift build --traits MPI` with Open MPI installed (found by pkg-config as ompi-c; scripts/test.sh
    // enables it on Linux). Without the trait nothing needs MPI's headers or library.
    traits: [.trait(name: "MPI", description: "Data-parallel training under mpirun (needs an MPI library).")],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // `swift package generate-documentation` (the DocC catalogs; the test command builds them).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // bert serve: the HTTP server, its lifecycle (SIGTERM), metrics and access log.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // WordPiece tokenization: no tensor code, no dependencies beyond Foundation.
        .target(name: "BertTokenizer", dependencies: ["CSupport"]),
        // A software prefetch for the compute core (header only).
        .target(name: "CSupport"),
        // The compute core: Float buffers, BLAS matrix products, SIMD kernels, worker threads.
        // BLAS is Accelerate on Apple platforms; on Linux OpenBLAS is opened at run time (BLAS.swift).
        // Low-precision (int8, bf16) matrix kernels in C: each AVX-512 kernel carries its
        // instruction set in a per-function target attribute and runs only where cpuid reports
        // it; a portable C version of the same arithmetic runs everywhere else. No build flags.
        .target(name: "CKernels"),
        .target(name: "BertCompute", dependencies: ["CSupport", "CKernels"]),
        // The model: configuration, checkpoints (safetensors), the encoder, heads and pooling.
        .target(name: "Bert", dependencies: ["BertCompute", "BertTokenizer"]),
        // Models by hub id: the Hugging Face cache (as huggingface_hub lays it out) and downloads
        // into it. Apart from Bert so that only what fetches models links the networking library.
        .target(name: "BertHub", dependencies: ["Bert"]),
        // bert serve's HTTP server (Hummingbird): routes, limits, errors and metrics as
        // text-embeddings-inference; the batching itself is Bert's BatchScheduler.
        .target(
            name: "BertServer",
            dependencies: [
                "Bert", "BertTokenizer", "BertCompute",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // MPI's C interface, found with pkg-config (Open MPI's ompi-c), imported only with the MPI trait.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // The Communicator over MPI (empty without the MPI trait).
        .target(
            name: "BertMPI",
            dependencies: ["Bert", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        // The thin command-line tool.
        .executableTarget(
            name: "BertCLI",
            dependencies: [
                "BertTokenizer", "Bert", "BertHub", "BertServer",
                .target(name: "BertMPI", condition: .when(traits: ["MPI"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Benchmarks live apart from the tests.
        .executableTarget(name: "TokenizerBench", dependencies: ["BertTokenizer"]),
        .executableTarget(name: "EncoderBench", dependencies: ["Bert"]),
        .executableTarget(name: "PretrainBench", dependencies: ["Bert"]),
        .testTarget(name: "BertTokenizerTests", dependencies: ["BertTokenizer"]),
        .testTarget(name: "BertModelTests", dependencies: ["Bert", "BertCompute", "BertHub"], exclude: ["Fixtures"]),
    ]
)
