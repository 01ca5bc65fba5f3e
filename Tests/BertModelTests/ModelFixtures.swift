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

/// Every parameter's gradient against a reference file's `<prefix>grad.<name>` tensors: within
/// 1e-4 of the tensor's largest value (or of 1% of the largest over all tensors, for tensors whose
/// gradients are all tiny); the reference must have exactly these parameters.
func expectGradientsMatch(
    _ grads: ParameterStore, reference: SafeTensorsFile, prefix: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let tensors = grads.layout.tensors
    let overall =
        try tensors.map { try reference.floats(prefix + "grad." + $0.name).map { abs($0) }.max() ?? 0 }.max() ?? 0
    for t in tensors {
        let ref = try reference.floats(prefix + "grad." + t.name)
        let scale = ref.map { abs($0) }.max() ?? 0
        let err = maxAbsDiff(grads.values(t), ref)
        #expect(
            err <= 1e-4 * max(scale, 1e-2 * overall), "\(t.name): max |diff| \(err), max |grad| \(scale)",
            sourceLocation: sourceLocation)
    }
    #expect(
        tensors.count == reference.tensors.filter { $0.name.hasPrefix(prefix + "grad.") }.count,
        sourceLocation: sourceLocation)
}

/// Central differences of `loss` (ε = 1e-2, in Float) against the backward pass's gradient for
/// about `perTensor` entries of each named tensor; returns how many entries were checked.
@discardableResult
func expectFiniteDifferencesMatch(
    _ parameters: ParameterStore, gradients: ParameterStore, tensors names: [String], perTensor: Int = 6,
    sourceLocation: SourceLocation = #_sourceLocation, loss: () throws -> Double
) throws -> Int {
    var checked = 0
    for name in names {
        let t = try #require(parameters.layout.tensor(named: name), sourceLocation: sourceLocation)
        for i in stride(from: 0, to: t.count, by: max(1, t.count / perTensor)) {
            let p = parameters[t] + i
            let saved = p.pointee, eps: Float = 1e-2
            p.pointee = saved + eps
            let up = try loss()
            p.pointee = saved - eps
            let down = try loss()
            p.pointee = saved
            let numeric = (up - down) / Double(2 * eps), analytic = Double(gradients[t][i])
            #expect(
                abs(numeric - analytic) <= 2e-3 + 2e-2 * abs(numeric),
                "\(name)[\(i)]: numeric \(numeric), backward \(analytic)",
                sourceLocation: sourceLocation)
            checked += 1
        }
    }
    return checked
}
