import Bert
import BertCompute
import Foundation
import Testing

/// Committed references made by scripts/make_model_reference.py with torch + transformers, and the
/// real all-MiniLM-L6-v2 folder that the README's test command fetches.
enum ModelFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let packageRoot = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let miniLMFolder = packageRoot.appendingPathComponent(".cache/models/all-MiniLM-L6-v2")
    static let required = ProcessInfo.processInfo.environment["BERT_REQUIRE_FIXTURES"] == "1"
    static var haveMiniLM: Bool {
        FileManager.default.fileExists(atPath: miniLMFolder.appendingPathComponent("model.safetensors").path)
    }

    static func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    static func reference(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: url(name))
    }
}

extension SafeTensorsFile {
    func int32s(_ name: String) throws -> [Int32] { try int64s(name).map { Int32($0) } }
}

/// The largest |a − b| over two equally long sequences (infinity when the lengths differ).
func maxAbsDiff<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float where A.Element == Float, B.Element == Float {
    guard a.count == b.count else { return .infinity }
    var m: Float = 0
    for (x, y) in zip(a, b) {
        let d = abs(x - y)
        if !(d <= m) { m = d.isNaN ? .infinity : d }
    }
    return m
}
