import BertTokenizer
import Foundation

/// The weights file of a model folder, in each form Hugging Face saves: `model.safetensors`,
/// sharded safetensors (`model.safetensors.index.json`), `pytorch_model.bin` and sharded
/// `pytorch_model.bin.index.json`, tried in that order (transformers' order: safetensors first).
/// Every form opens as one `SafeTensorsFile`, its tensors read in place.
public enum ModelWeights {
    /// The file names tried, in order.
    public static let fileNames = [
        "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
    ]

    /// The weights file of `folder`, or nil when it has none.
    public static func file(in folder: URL) -> URL? {
        fileNames.lazy.map { folder.appendingPathComponent($0) }.first {
            FileManager.default.fileExists(atPath: $0.path)
        }
    }

    /// Opens the weights of `folder`.
    public static func open(in folder: URL) throws -> SafeTensorsFile {
        guard let url = file(in: folder) else {
            throw BertError.wrongModel(
                path: folder.path, reason: "no weights (none of \(fileNames.joined(separator: ", ")))")
        }
        return try open(url)
    }

    /// Opens one weights file (either format, or a shard index), by its name.
    public static func open(_ url: URL) throws -> SafeTensorsFile {
        let name = url.lastPathComponent
        if name.hasSuffix(".index.json") { return try openSharded(index: url) }
        if name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") {
            return try PyTorchCheckpoint.read(url)
        }
        do { return try SafeTensorsFile(contentsOf: url) } catch let e as SafeTensorsError {
            throw BertError.malformedFile(path: e.file, reason: e.message)
        }
    }

    /// The shard of each tensor a shard index names: {"metadata": {...}, "weight_map": {tensor:
    /// shard file}}. Shards are files of the same folder: a name with a path is refused.
    public static func shardMap(index url: URL) throws -> [String: String] {
        func bad(_ why: String) -> BertError { .malformedFile(path: url.path, reason: why) }
        let object = try readJSON(url)
        guard let root = object as? [String: Any], let map = root["weight_map"] as? [String: Any] else {
            throw bad("no \"weight_map\" object")
        }
        var shardOf: [String: String] = [:]
        for (tensor, value) in map {
            guard let shard = value as? String, !shard.isEmpty, !shard.contains("/"), shard != "..", shard != "." else {
                throw bad("weight_map[\"\(tensor)\"] is not the name of a file beside the index")
            }
            shardOf[tensor] = shard
        }
        return shardOf
    }

    /// A shard index opened as one file: each tensor must be in the shard named.
    static func openSharded(index url: URL) throws -> SafeTensorsFile {
        let path = url.path
        let shardOf = try shardMap(index: url)
        let folder = url.deletingLastPathComponent()
        let names = Set(shardOf.values).sorted()
        let shards = try names.map { name -> SafeTensorsFile in
            let shard = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: shard.path) else {
                throw BertError.fileAccess(
                    path: shard.path, reason: "the shard named by \(url.lastPathComponent) is missing")
            }
            return try open(shard)
        }
        let byName = Dictionary(uniqueKeysWithValues: zip(names, shards))
        for (tensor, name) in shardOf.sorted(by: { $0.key < $1.key }) where byName[name]?.info(tensor) == nil {
            throw BertError.malformedFile(path: path, reason: "tensor '\(tensor)' is not in its shard \(name)")
        }
        do { return try SafeTensorsFile(merging: shards, name: path) } catch let e as SafeTensorsError {
            throw BertError.malformedFile(path: e.file, reason: e.message)
        }
    }
}

extension ModelWeights {
    /// Every tensor of `weights` into one safetensors file at `url` (atomically), each in its own
    /// dtype. Floating-point tensors must be finite: no model with NaN weights is written.
    public static func writeSafeTensors(_ weights: SafeTensorsFile, to url: URL) throws {
        var writer = SafeTensorsWriter()
        for t in weights.tensors {
            if [.F32, .F16, .BF16, .F64].contains(t.dtype) {
                let values: [Float]
                do { values = try weights.floats(t.name) } catch let e as SafeTensorsError {
                    throw BertError.malformedFile(path: e.file, reason: e.message)
                }
                guard values.allSatisfy({ $0.isFinite }) else {
                    throw BertError.notFinite(
                        what: "\(weights.name): tensor \(t.name)",
                        advice: "the checkpoint holds NaN or infinite weights")
                }
            }
            try weights.withBytes(t.name) { writer.add(t.name, dtype: t.dtype, shape: t.shape, bytes: $0) }
        }
        do { try writer.write(to: url, metadata: ["format": "pt"]) } catch let e as SafeTensorsError {
            throw BertError.fileAccess(path: e.file, reason: e.message)
        }
    }

    /// Whether `name` is a weights file of a folder (a single file, a shard, or a shard index),
    /// which a converted folder does not carry over.
    public static func isWeightsFile(_ name: String) -> Bool {
        fileNames.contains(name)
            || (name.hasPrefix("pytorch_model-") && name.hasSuffix(".bin"))
            || (name.hasPrefix("model-") && name.hasSuffix(".safetensors"))
    }
}
