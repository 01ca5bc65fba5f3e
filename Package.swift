// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-bert",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "BertTokenizer", targets: ["BertTokenizer"]),
        .executable(name: "bert", targets: ["BertCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // WordPiece tokenization: no tensor code, no dependencies beyond Foundation.
        .target(name: "BertTokenizer"),
        // The thin command-line tool.
        .executableTarget(
            name: "BertCLI",
            dependencies: [
                "BertTokenizer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Benchmarks live apart from the tests.
        .executableTarget(name: "TokenizerBench", dependencies: ["BertTokenizer"]),
        .testTarget(name: "BertTokenizerTests", dependencies: ["BertTokenizer"]),
    ]
)
