import BertCompute
import BertTokenizer
import Foundation

/// Loading and saving Hugging Face checkpoints (`config.json` + `model.safetensors`).
extension ParameterLayout {
    /// The checkpoint name of a tensor of this layout in `file` (after `strip`/`add` of a prefix,
    /// accepting TensorFlow's LayerNorm gamma/beta), checked for presence and shape, before anything
    /// is allocated or read.
    public func checkpointName(
        of t: TensorRef, in file: SafeTensorsFile, stripping strip: String = "",
        adding add: String = ""
    ) throws -> String {
        var base = t.name
        if !strip.isEmpty, base.hasPrefix(strip) { base.removeFirst(strip.count) }
        var candidates = [add + base]
        if base.hasSuffix("LayerNorm.weight") { candidates.append(add + base.dropLast(6) + "gamma") }
        if base.hasSuffix("LayerNorm.bias") { candidates.append(add + base.dropLast(4) + "beta") }
        guard let name = candidates.first(where: { file.info($0) != nil }), let info = file.info(name) else {
            throw BertError.tensorMismatch(
                file: file.name, tensor: candidates[0], expected: t.shape, found: nil,
                reason: "missing tensor '\(candidates[0])'")
        }
        guard info.shape == t.shape else {
            throw BertError.tensorMismatch(
                file: file.name, tensor: name, expected: t.shape, found: info.shape,
                reason:
                    "tensor '\(name)' has shape \(info.shape) but the config gives \(t.shape); config.json does not "
                    + "match the weights"
            )
        }
        return name
    }

    /// Checks every tensor of the layout against the file (names and shapes).
    public func check(against file: SafeTensorsFile, stripping strip: String = "", adding add: String = "") throws {
        for t in tensors { _ = try checkpointName(of: t, in: file, stripping: strip, adding: add) }
    }
}

extension ParameterStore {
    /// Fills every tensor of the layout from `file`. A tensor named N is looked up as
    /// `filePrefix + N` (so "bert." can be added or removed); old TensorFlow-converted names
    /// (LayerNorm.gamma / .beta) are accepted for LayerNorm weights. Tensors of the file that the
    /// layout does not use (heads, `position_ids`) are ignored by this call.
    public func load(from file: SafeTensorsFile, stripping strip: String = "", adding add: String = "") throws {
        for t in layout.tensors {
            let name = try layout.checkpointName(of: t, in: file, stripping: strip, adding: add)
            do {
                // A quantized folder's matrices stay as stored (see HeldMatrices.swift).
                if t.shape.count == 2, t.count > 0, let dtype = file.info(name)?.dtype, dtype == .I8 || dtype == .BF16 {
                    if dtype == .I8 {
                        let (q, scales) = try file.int8Matrix(name)
                        hold(t, .int8(q: q, scales: scales))
                    } else {
                        hold(t, .bf16(try file.bf16Bits(name)))
                    }
                    continue
                }
                // A held form from an earlier load would be widened over these floats later.
                release(t)
                try file.copyFloats(
                    name, into: UnsafeMutableBufferPointer(start: storage.pointer + t.offset, count: t.count))
            } catch let e as SafeTensorsError {
                throw BertError.malformedFile(path: e.file, reason: e.message)
            }
            if !isFinite(t) {
                throw BertError.notFinite(
                    what: "\(file.name): tensor \(name)",
                    advice: "the checkpoint holds NaN or infinite weights, and every output would be NaN")
            }
        }
    }

    /// Every tensor as F32 under its checkpoint name, optionally only those `include` accepts.
    public func addTensors(to writer: inout SafeTensorsWriter, include: (TensorRef) -> Bool = { _ in true }) {
        for t in layout.tensors where include(t) {
            writer.add(t.name, shape: t.shape, floats: UnsafeBufferPointer(start: self[t], count: t.count))
        }
    }
}

extension BertModel {
    /// Loads a Hugging Face model folder (config.json + model.safetensors), e.g. a BertModel, a
    /// sentence-transformers folder or a BertFor* checkpoint (its `bert.` encoder is used).
    public convenience init(folder: URL) throws {
        let (config, file) = try openCheckpoint(folder)
        try self.init(config: config, file: file)
    }

    /// A BertModel from an opened checkpoint, with or without the `bert.` prefix. The pooler is
    /// loaded when the checkpoint has one.
    public convenience init(config: BertConfig, file: SafeTensorsFile) throws {
        let prefix: String
        if file.info("embeddings.word_embeddings.weight") != nil {
            prefix = ""
        } else if file.info("bert.embeddings.word_embeddings.weight") != nil {
            prefix = "bert."
        } else {
            throw BertError.wrongModel(
                path: file.name,
                reason:
                    "no BERT embeddings (expected a tensor 'embeddings.word_embeddings.weight' or "
                    + "'bert.embeddings.word_embeddings.weight')"
            )
        }
        // Layers beyond num_hidden_layers mean the config does not describe these weights.
        let layerPrefix = prefix + "encoder.layer."
        for t in file.tensors where t.name.hasPrefix(layerPrefix) {
            let rest = t.name.dropFirst(layerPrefix.count)
            if let n = Int(rest.prefix(while: { $0.isNumber })), n >= config.numHiddenLayers {
                throw BertError.tensorMismatch(
                    file: file.name, tensor: t.name, expected: nil, found: t.shape,
                    reason:
                        "tensor '\(t.name)' belongs to layer \(n), but config.json has num_hidden_layers = "
                        + "\(config.numHiddenLayers)"
                )
            }
        }
        let hasPooler = file.info(prefix + "pooler.dense.weight") != nil
        // Names and shapes first: a config that does not describe these weights is an error before
        // any memory is allocated for it.
        var layout = ParameterLayout()
        _ = BertModelWeights(&layout, config: config, addPoolingLayer: hasPooler)
        try layout.check(against: file, adding: prefix)
        try self.init(config: config, addPoolingLayer: hasPooler)
        try parameters.load(from: file, adding: prefix)
    }

    /// Writes config.json and model.safetensors (names as transformers' BertModel: no prefix).
    public func save(to folder: URL) throws {
        var c = config
        c.architectures = ["BertModel"]
        try writeModelFolder(config: c, parameters: parameters, to: folder)
    }
}

/// config.json and the weights of a model folder (`ModelWeights`), with clear errors.
func openCheckpoint(_ folder: URL) throws -> (BertConfig, SafeTensorsFile) {
    let configURL = folder.appendingPathComponent("config.json")
    guard FileManager.default.fileExists(atPath: configURL.path) else {
        throw BertError.wrongModel(path: folder.path, reason: "no config.json (is this a Hugging Face model folder?)")
    }
    let config = try BertConfig(contentsOf: configURL)
    return (config, try ModelWeights.open(in: folder))
}

/// Writes a model folder: config.json and model.safetensors (every tensor of `parameters` under
/// its checkpoint name), each file atomically, the folder created when needed. Every model and
/// head saves through here.
func writeModelFolder(config: BertConfig, parameters: ParameterStore, to folder: URL) throws {
    try parameters.checkFinite(
        "the model to write",
        advice: "training diverged; nothing was written (lower the learning rate or check the data)")
    do {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
        throw BertError.fileAccess(
            path: folder.path, reason: "cannot create the folder: \(fileErrorReason(error, path: folder.path))")
    }
    try config.write(to: folder.appendingPathComponent("config.json"))
    var writer = SafeTensorsWriter()
    parameters.addTensors(to: &writer)
    do {
        try writer.write(to: folder.appendingPathComponent("model.safetensors"))
    } catch let e as SafeTensorsError {
        throw BertError.fileAccess(path: e.file, reason: e.message)
    }
}
