// swift-tools-version:6.0
// A package that depends on swift-bert as any other package would (here by path), and uses only
// its public API. The test command builds and runs it, so a public API that breaks, or a manifest
// that other packages cannot depend on, fails the tests.
import PackageDescription

let package = Package(
    name: "swift-bert-examples",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "swift-bert", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "EmbedSentences",
            dependencies: [
                .product(name: "Bert", package: "swift-bert"),
                .product(name: "BertHub", package: "swift-bert"),
            ]),
        .executableTarget(
            name: "FineTuneClassifier",
            dependencies: [
                .product(name: "Bert", package: "swift-bert"),
                .product(name: "BertHub", package: "swift-bert"),
                .product(name: "BertTokenizer", package: "swift-bert"),
            ]),
    ]
)
