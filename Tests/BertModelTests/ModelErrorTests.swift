import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

// Bad input gets a clear error, never a crash: broken checkpoints, configs that do not describe
// the weights, batches the model cannot take, sentence-embedding limits. Every bad checkpoint is
// built in a temporary folder from the committed tiny fixture (config.json + model.safetensors
// with `bert.`-prefixed names, hidden size 32, 2 layers, vocabulary 99, 40 positions).

// MARK: - Helpers

/// The tiny fixture copied into a fresh temporary folder, with tools to break it.
private struct ScratchModel {
    static let source = ModelFixtures.url("tiny-pretraining")
    let folder: URL
    var configURL: URL { folder.appendingPathComponent("config.json") }
    var weightsURL: URL { folder.appendingPathComponent("model.safetensors") }

    init(copyWeights: Bool = true, copyConfig: Bool = true) throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("bert-model-errors-\(UUID().uuidString)", isDirectory: true)
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        if copyConfig {
            try fm.copyItem(at: Self.source.appendingPathComponent("config.json"), to: configURL)
        }
        if copyWeights {
            try fm.copyItem(at: Self.source.appendingPathComponent("model.safetensors"), to: weightsURL)
        }
    }

    func remove() { try? FileManager.default.removeItem(at: folder) }

    /// Rewrites config.json after `edit` changes its keys.
    func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        edit(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: configURL)
    }

    /// Rewrites model.safetensors (all F32) after `edit` changes the list of tensors.
    func editTensors(_ edit: (inout [(name: String, shape: [Int], values: [Float])]) throws -> Void) throws {
        let file = try SafeTensorsFile(contentsOf: Self.source.appendingPathComponent("model.safetensors"))
        var tensors = try file.tensors.map { (name: $0.name, shape: $0.shape, values: try file.floats($0.name)) }
        try edit(&tensors)
        var writer = SafeTensorsWriter()
        for t in tensors {
            t.values.withUnsafeBufferPointer { writer.add(t.name, shape: t.shape, floats: $0) }
        }
        try writer.write(to: weightsURL)
    }

    /// The raw pieces of model.safetensors: header JSON object and data buffer.
    func readRaw() throws -> (header: [String: Any], data: Data) {
        let bytes = try Data(contentsOf: weightsURL)
        let n = Int(bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let header = try #require(
            try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + n))) as? [String: Any])
        return (header, bytes.subdata(in: (8 + n)..<bytes.count))
    }

    /// Writes model.safetensors from a header object and a data buffer (header padded to 8 bytes).
    func writeRaw(header: [String: Any], data: Data) throws {
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        out.append(data)
        try out.write(to: weightsURL)
    }

    /// Changes one tensor's header entry, keeping the data buffer.
    func editEntry(_ name: String, _ edit: (inout [String: Any]) -> Void) throws {
        var (header, data) = try readRaw()
        var entry = try #require(header[name] as? [String: Any], "no tensor \(name)")
        edit(&entry)
        header[name] = entry
        try writeRaw(header: header, data: data)
    }
}

/// The error `body` throws, or nil (recorded as an issue) when it succeeds.
private func thrown(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> (any Error)? {
    do {
        try body()
        Issue.record("expected an error, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// The message of the BertError that loading `folder` throws ("" if it did not throw one).
private func loadError(_ folder: URL, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    guard let error = thrown({ _ = try BertModel(folder: folder) }, sourceLocation: sourceLocation) else { return "" }
    #expect(
        error is BertError, "expected a BertError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    return "\(error)"
}

/// The BertError that loading `folder` throws (nil, and an issue recorded, if it threw another).
private func loadFailure(_ folder: URL, sourceLocation: SourceLocation = #_sourceLocation) -> BertError? {
    guard let error = thrown({ _ = try BertModel(folder: folder) }, sourceLocation: sourceLocation) else { return nil }
    #expect(
        error is BertError, "expected a BertError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    return error as? BertError
}

/// The tensor, expected and found shapes of a `.tensorMismatch` (nil for any other error).
private func tensorMismatch(_ error: BertError?) -> (file: String, tensor: String, expected: [Int]?, found: [Int]?)? {
    guard case .tensorMismatch(let file, let tensor, let expected, let found, _) = error else { return nil }
    return (file, tensor, expected, found)
}

/// Checks that `message` contains every one of `parts`.
private func expectMentions(_ message: String, _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    for part in parts {
        #expect(
            message.contains(part), "message does not mention \"\(part)\": \(message)", sourceLocation: sourceLocation)
    }
}

private let tinyHidden = 32

// MARK: - Broken safetensors files

@Suite struct ModelErrorTests {
    @Test func truncatedWeightsFileNamesTheFile() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let bytes = try Data(contentsOf: m.weightsURL)
        try bytes.prefix(bytes.count - 20_000).write(to: m.weightsURL)
        let message = loadError(m.folder)
        expectMentions(message, [m.weightsURL.path, "out of range"])
    }

    @Test func fileShorterThanTheLengthPrefix() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try Data([1, 2, 3]).write(to: m.weightsURL)
        expectMentions(loadError(m.folder), [m.weightsURL.path, "truncated"])
    }

    @Test func headerLengthPastTheEndOfTheFile() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        var bytes = try Data(contentsOf: m.weightsURL)
        let huge = UInt64(bytes.count) * 3
        withUnsafeBytes(of: huge.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        try bytes.write(to: m.weightsURL)
        expectMentions(loadError(m.folder), [m.weightsURL.path, "header length \(huge)", "past the end"])
    }

    @Test func invalidHeaderJSON() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        var bytes = try Data(contentsOf: m.weightsURL)
        #expect(bytes[8] == UInt8(ascii: "{"))
        bytes[8] = UInt8(ascii: "x")
        try bytes.write(to: m.weightsURL)
        expectMentions(loadError(m.folder), [m.weightsURL.path, "not valid JSON"])
    }

    @Test func overlappingDataOffsets() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        // Two 32-float tensors given the same bytes (the second's own bytes become a gap).
        let a = "bert.encoder.layer.0.attention.output.LayerNorm.bias"
        let b = "bert.encoder.layer.0.attention.output.LayerNorm.weight"
        var (header, data) = try m.readRaw()
        let range = try #require((header[a] as? [String: Any])?["data_offsets"] as? [Int])
        var entry = try #require(header[b] as? [String: Any])
        entry["data_offsets"] = range
        header[b] = entry
        try m.writeRaw(header: header, data: data)
        expectMentions(loadError(m.folder), [m.weightsURL.path, a, b, "overlap"])
    }

    @Test func offsetsPastTheDataBuffer() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let name = "cls.seq_relationship.weight"
        var (header, data) = try m.readRaw()
        let size = data.count
        var entry = try #require(header[name] as? [String: Any])
        entry["data_offsets"] = [size, size + 256]
        header[name] = entry
        try m.writeRaw(header: header, data: data)
        expectMentions(loadError(m.folder), [m.weightsURL.path, name, "out of range", "\(size + 256)"])
    }

    @Test(arguments: ["F8_E4M3", "Q4"])
    func unknownDType(_ dtype: String) throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let name = "bert.pooler.dense.bias"
        try m.editEntry(name) { $0["dtype"] = dtype }
        expectMentions(loadError(m.folder), [m.weightsURL.path, name, dtype, "dtype"])
    }

    @Test func integerTensorWhereFloatsAreNeeded() throws {
        // A valid file whose LayerNorm bias is I64: readable, but not as floats.
        let m = try ScratchModel()
        defer { m.remove() }
        let file = try SafeTensorsFile(contentsOf: m.weightsURL)
        var writer = SafeTensorsWriter()
        let name = "bert.embeddings.LayerNorm.bias"
        for t in file.tensors {
            if t.name == name {
                writer.add(t.name, shape: t.shape, int64s: [Int64](repeating: 0, count: t.elementCount))
            } else {
                try file.floats(t.name).withUnsafeBufferPointer { writer.add(t.name, shape: t.shape, floats: $0) }
            }
        }
        try writer.write(to: m.weightsURL)
        expectMentions(loadError(m.folder), [name, "I64"])
    }

    // MARK: Weights that do not match the config

    @Test func missingTensorIsNamed() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let name = "bert.encoder.layer.1.output.dense.weight"
        try m.editTensors { $0.removeAll { $0.name == name } }
        expectMentions(loadError(m.folder), [m.weightsURL.path, "missing", name])
        let mismatch = try #require(tensorMismatch(loadFailure(m.folder)))
        #expect(mismatch.file == m.weightsURL.path && mismatch.tensor == name)
        #expect(mismatch.expected == [32, 37] && mismatch.found == nil)
    }

    @Test func missingEmbeddingsAreExplained() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editTensors { $0.removeAll { $0.name.hasSuffix("word_embeddings.weight") } }
        expectMentions(loadError(m.folder), [m.weightsURL.path, "word_embeddings"])
        guard case .wrongModel(let path, _) = loadFailure(m.folder) else {
            Issue.record("expected .wrongModel")
            return
        }
        #expect(path == m.weightsURL.path)
    }

    @Test func transposedTensorNamesBothShapes() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let name = "bert.encoder.layer.0.intermediate.dense.weight"  // [37, 32]
        try m.editTensors { tensors in
            let i = try #require(tensors.firstIndex { $0.name == name })
            tensors[i].shape = [32, 37]
        }
        expectMentions(loadError(m.folder), [name, "[32, 37]", "[37, 32]", "config.json"])
        let mismatch = try #require(tensorMismatch(loadFailure(m.folder)))
        #expect(mismatch.tensor == name && mismatch.expected == [37, 32] && mismatch.found == [32, 37])
    }

    @Test func resizedTensorNamesBothShapes() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let name = "bert.embeddings.position_embeddings.weight"  // [40, 32]
        try m.editTensors { tensors in
            let i = try #require(tensors.firstIndex { $0.name == name })
            tensors[i].shape = [20, 32]
            tensors[i].values.removeLast(20 * 32)
        }
        expectMentions(loadError(m.folder), [name, "[20, 32]", "[40, 32]"])
        let mismatch = try #require(tensorMismatch(loadFailure(m.folder)))
        #expect(mismatch.tensor == name && mismatch.expected == [40, 32] && mismatch.found == [20, 32])
    }

    @Test func configHiddenSizeLargerThanTheWeights() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editConfig { $0["hidden_size"] = 64 }
        expectMentions(
            loadError(m.folder),
            [
                "bert.embeddings.word_embeddings.weight", "[99, 32]", "[99, 64]",
                "config.json does not match",
            ])
    }

    @Test func configWithFewerLayersThanTheWeights() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editConfig { $0["num_hidden_layers"] = 1 }
        expectMentions(loadError(m.folder), ["num_hidden_layers", "layer 1", "bert.encoder.layer.1."])
    }

    @Test func configWithMoreLayersThanTheWeights() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editConfig { $0["num_hidden_layers"] = 3 }
        expectMentions(loadError(m.folder), ["missing", "bert.encoder.layer.2."])
    }

    @Test func hiddenSizeNotAMultipleOfTheHeads() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editConfig { $0["num_attention_heads"] = 5 }
        expectMentions(loadError(m.folder), [m.configURL.path, "hidden_size 32", "num_attention_heads 5", "multiple"])
    }

    @Test func unsupportedActivation() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editConfig { $0["hidden_act"] = "swish" }
        expectMentions(loadError(m.folder), [m.configURL.path, "hidden_act", "swish", "not supported"])
    }

    @Test(arguments: [
        ("vocab_size", "0" as String), ("hidden_size", "-32"), ("max_position_embeddings", "\"forty\""),
        ("layer_norm_eps", "0"), ("num_hidden_layers", "1.5"), ("pad_token_id", "99"),
    ])
    func badConfigNumbers(_ key: String, _ value: String) throws {
        let m = try ScratchModel()
        defer { m.remove() }
        var text = try String(contentsOf: m.configURL, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.contains("\"\(key)\"") })
        text = text.replacingOccurrences(
            of: String(line), with: "  \"\(key)\": \(value)" + (line.hasSuffix(",") ? "," : ""))
        try text.write(to: m.configURL, atomically: true, encoding: .utf8)
        expectMentions(loadError(m.folder), [m.configURL.path, key])
        guard case .invalidConfig(let source, let reason) = loadFailure(m.folder) else {
            Issue.record("expected .invalidConfig for \(key)")
            return
        }
        #expect(source == m.configURL.path && reason.contains(key))
    }

    @Test func configThatIsNotJSON() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try Data("hidden_size = 32\n".utf8).write(to: m.configURL)
        expectMentions(loadError(m.folder), [m.configURL.path, "not a JSON object"])
    }

    @Test func configOfAnotherModelType() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        try m.editConfig { $0["model_type"] = "roberta" }
        expectMentions(loadError(m.folder), [m.configURL.path, "roberta"])
    }

    @Test func missingConfig() throws {
        let m = try ScratchModel(copyConfig: false)
        defer { m.remove() }
        expectMentions(loadError(m.folder), [m.folder.path, "no config.json"])
        #expect(
            loadFailure(m.folder)
                == .wrongModel(path: m.folder.path, reason: "no config.json (is this a Hugging Face model folder?)"))
    }

    @Test func missingWeights() throws {
        let m = try ScratchModel(copyWeights: false)
        defer { m.remove() }
        expectMentions(loadError(m.folder), [m.folder.path, "no weights", "model.safetensors", "pytorch_model.bin"])
    }

    @Test func missingFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-model-\(UUID().uuidString)")
        expectMentions(loadError(folder), [folder.path])
    }

    /// A pytorch_model.bin that is not one (PyTorchCheckpointTests reads real ones).
    @Test func pytorchFileThatIsNotACheckpoint() throws {
        let m = try ScratchModel(copyWeights: false)
        defer { m.remove() }
        let bin = m.folder.appendingPathComponent("pytorch_model.bin")
        try Data(repeating: 0x50, count: 1000).write(to: bin)
        expectMentions(loadError(m.folder), [bin.path, "not a PyTorch checkpoint"])
    }

    // MARK: Batches the model cannot take

    static let model: BertModel? = try? BertModel(folder: ModelFixtures.url("tiny-pretraining"))

    func forwardError(_ batch: EncoderBatch, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let model = try #require(Self.model)
        guard let error = thrown({ _ = try model.forward(batch) }, sourceLocation: sourceLocation) else { return "" }
        #expect(error is BertError, "expected a BertError, got \(error)", sourceLocation: sourceLocation)
        return "\(error)"
    }

    @Test func inputLongerThanMaxPositionEmbeddings() throws {
        let batch = EncoderBatch(batchSize: 1, sequenceLength: 41, inputIds: [Int32](repeating: 5, count: 41))
        expectMentions(try forwardError(batch), ["41", "max_position_embeddings 40"])
        // The limit itself is fine.
        let ok = try #require(Self.model).forward(
            EncoderBatch(
                batchSize: 1, sequenceLength: 40,
                inputIds: [Int32](repeating: 5, count: 40)))
        #expect(ok.lastHiddenState.count == 40 * tinyHidden)
    }

    @Test func explicitPositionIdPastTheTable() throws {
        let batch = EncoderBatch(batchSize: 1, sequenceLength: 3, inputIds: [2, 5, 3], positionIds: [0, 40, 2])
        expectMentions(try forwardError(batch), ["position id 40", "max_position_embeddings 40"])
    }

    @Test(arguments: [Int32(99), 1000, -1])
    func inputIdOutsideTheVocabulary(_ id: Int32) throws {
        let batch = EncoderBatch(batchSize: 2, sequenceLength: 3, inputIds: [2, 5, 3, 2, id, 3])
        expectMentions(try forwardError(batch), ["input id \(id)", "batch 1, position 1", "vocabulary (size 99)"])
    }

    @Test func paddedIdsAreNotChecked() throws {
        // A masked-out position may hold anything: it is never looked up.
        let batch = EncoderBatch(batchSize: 1, sequenceLength: 3, inputIds: [2, 3, 12345], attentionMask: [1, 1, 0])
        let out = try #require(Self.model).forward(batch)
        #expect(out.lastHiddenState[(2 * tinyHidden)...].allSatisfy { $0 == 0 })
    }

    @Test func tokenTypeIdOutsideTypeVocabSize() throws {
        let batch = EncoderBatch(batchSize: 1, sequenceLength: 3, inputIds: [2, 5, 3], tokenTypeIds: [0, 2, 0])
        expectMentions(try forwardError(batch), ["token type id 2", "position 1", "type_vocab_size 2"])
    }

    @Test func mismatchedArrayLengths() throws {
        expectMentions(
            try forwardError(EncoderBatch(batchSize: 2, sequenceLength: 3, inputIds: [2, 5, 3, 2, 3])),
            ["input_ids has 5 values", "6"])
        expectMentions(
            try forwardError(
                EncoderBatch(
                    batchSize: 2, sequenceLength: 3, inputIds: [2, 5, 3, 2, 5, 3],
                    tokenTypeIds: [0, 0, 0, 0])),
            ["token_type_ids has 4 values", "6"])
        expectMentions(
            try forwardError(
                EncoderBatch(
                    batchSize: 2, sequenceLength: 3, inputIds: [2, 5, 3, 2, 5, 3],
                    attentionMask: [1, 1, 1, 1, 1, 1, 1])),
            ["attention_mask has 7 values", "6"])
        expectMentions(
            try forwardError(
                EncoderBatch(
                    batchSize: 2, sequenceLength: 3, inputIds: [2, 5, 3, 2, 5, 3],
                    positionIds: [0, 1, 2])),
            ["position_ids has 3 values", "6"])
        expectMentions(
            try forwardError(EncoderBatch(batchSize: -1, sequenceLength: 3, inputIds: [])),
            ["negative"])
    }

    @Test func emptyBatchesAndFullyMaskedRowsDoNotCrash() throws {
        let model = try #require(Self.model)
        let none = try model.forward(EncoderBatch(batchSize: 0, sequenceLength: 0, inputIds: []))
        #expect(none.lastHiddenState.isEmpty && none.poolerOutput?.isEmpty == true)
        let zeroLength = try model.forward(EncoderBatch(batchSize: 2, sequenceLength: 0, inputIds: []))
        #expect(
            zeroLength.lastHiddenState.isEmpty
                && zeroLength.poolerOutput == [Float](repeating: 0, count: 2 * tinyHidden))
        let masked = try model.forward(
            EncoderBatch(
                batchSize: 2, sequenceLength: 3, inputIds: [2, 5, 3, 2, 6, 3],
                attentionMask: [1, 1, 1, 0, 0, 0]), outputHiddenStates: true)
        #expect(masked.lastHiddenState[(3 * tinyHidden)...].allSatisfy { $0 == 0 })
        #expect(masked.poolerOutput![tinyHidden...].allSatisfy { $0 == 0 })
        #expect(masked.lastHiddenState[..<(3 * tinyHidden)].allSatisfy { $0.isFinite })
        let allMasked = try model.forward(
            EncoderBatch(batchSize: 1, sequenceLength: 2, inputIds: [2, 3], attentionMask: [0, 0]),
            outputHiddenStates: true)
        #expect(allMasked.lastHiddenState.allSatisfy { $0 == 0 })
        #expect(allMasked.poolerOutput!.allSatisfy { $0 == 0 })
    }

    // batchSize × sequenceLength must not overflow Int (a trap would end the process).
    @Test
    func hugeBatchDimensionsAreAnErrorNotATrap() throws {
        let batch = EncoderBatch(batchSize: Int.max / 2 + 1, sequenceLength: 2, inputIds: [2, 3])
        expectMentions(try forwardError(batch), ["too large"])
    }

    // MARK: Sentence embeddings on the tiny model

    /// 99 tokens, as the tiny model's vocabulary: the five specials and 94 two-letter words.
    static let vocabularyTokens: [String] = {
        let letters = "abcdefghij".map(String.init)
        let words = letters.flatMap { a in letters.map { a + $0 } }
        return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words.prefix(94)
    }()

    /// A tiny-model folder with a vocab.txt.
    fileprivate func tinyWithVocabulary(_ tokens: [String] = ModelErrorTests.vocabularyTokens) throws -> ScratchModel {
        let m = try ScratchModel()
        try (tokens.joined(separator: "\n") + "\n").write(
            to: m.folder.appendingPathComponent("vocab.txt"),
            atomically: true, encoding: .utf8)
        return m
    }

    /// `count` words of the vocabulary, separated by spaces (one token each).
    static func words(_ count: Int) -> String {
        (0..<count).map { vocabularyTokens[5 + $0 % 94] }.joined(separator: " ")
    }

    @Test func emptyStringEmbedsAsClsSep() throws {
        let m = try tinyWithVocabulary()
        defer { m.remove() }
        let embedder = try SentenceEmbedder(folder: m.folder)
        #expect(embedder.maxLength == 40 && embedder.pooling == [.mean] && !embedder.normalize)
        #expect(try embedder.tokenizer.encode("").ids == [2, 3])
        let vectors = try embedder.embed(["", "aa ab"])
        #expect(vectors.count == 2)
        #expect(vectors[0].count == tinyHidden && embedder.dimension == tinyHidden)
        #expect(vectors[0].allSatisfy { $0.isFinite })
        #expect(vectors[0].contains { $0 != 0 })
        #expect(vectors[0] != vectors[1])
        #expect(try embedder.embed([]).isEmpty)
    }

    @Test func longInputIsTruncatedByDefault() throws {
        let m = try tinyWithVocabulary()
        defer { m.remove() }
        let embedder = try SentenceEmbedder(folder: m.folder)
        let long = Self.words(60), cut = Self.words(38)  // 38 words + [CLS] + [SEP] = 40 tokens
        #expect(try embedder.tokenizer.encode(long).count == 40)
        let vectors = try embedder.embed([long, cut, "aa"], batchSize: 2)
        #expect(maxAbsDiff(vectors[0], vectors[1]) <= 1e-6)
        #expect(maxAbsDiff(vectors[0], try embedder.embed([cut])[0]) <= 1e-6)
    }

    @Test func longInputWithoutTruncationThrowsItsIndex() throws {
        let m = try tinyWithVocabulary()
        defer { m.remove() }
        let embedder = try SentenceEmbedder(folder: m.folder, truncate: false)
        // Exactly at the limit is fine.
        #expect(try embedder.embed([Self.words(38)]).count == 1)
        let error = try #require(
            thrown { _ = try embedder.embed(["aa ab", Self.words(38), Self.words(60), Self.words(50)]) })
        let tooLong = try #require(error as? InputTooLongError, "got \(error)")
        #expect(tooLong.index == 2 && tooLong.tokens == 62 && tooLong.maxLength == 40)
        expectMentions("\(tooLong)", ["input 3", "62 tokens", "40"])
    }

    @Test func maxLengthMustFitThePositionTable() throws {
        let m = try tinyWithVocabulary()
        defer { m.remove() }
        let over = try #require(thrown { _ = try SentenceEmbedder(folder: m.folder, maxLength: 41) })
        #expect(over is BertError)
        expectMentions("\(over)", ["41", "max_position_embeddings 40"])
        let under = try #require(thrown { _ = try SentenceEmbedder(folder: m.folder, maxLength: 1) })
        expectMentions("\(under)", ["at least 2"])
        let none = try #require(thrown { _ = try SentenceEmbedder(folder: m.folder, pooling: []) })
        expectMentions("\(none)", ["pooling"])
        // A shorter limit truncates there.
        let short = try SentenceEmbedder(folder: m.folder, maxLength: 10)
        #expect(try short.tokenizer.encode(Self.words(30)).count == 10)
    }

    @Test func tokenizerLargerThanTheModelVocabulary() throws {
        let m = try tinyWithVocabulary(Self.vocabularyTokens + ["ja"])
        defer { m.remove() }
        let error = try #require(thrown { _ = try SentenceEmbedder(folder: m.folder) })
        expectMentions("\(error)", ["100 tokens", "vocab_size 99"])
    }

    @Test func folderWithoutTokenizerFiles() throws {
        let m = try ScratchModel()
        defer { m.remove() }
        let error = try #require(thrown { _ = try SentenceEmbedder(folder: m.folder) })
        expectMentions("\(error)", [m.folder.path, "tokenizer"])
    }

    // MARK: Presets and parameter counts

    @Test func unknownPresetListsThePresets() throws {
        let error = try #require(thrown { _ = try BertConfig.preset("huge") })
        #expect(error is BertError)
        expectMentions("\(error)", ["huge"] + BertConfig.presetNames)
    }

    @Test func presetParameterCounts() throws {
        #expect(ParameterBreakdown(config: try BertConfig.preset("base")).total == 109_482_240)
        #expect(ParameterBreakdown(config: try BertConfig.preset("BASE")).total == 109_482_240)
        let large = ParameterBreakdown(config: try BertConfig.preset("large")).total
        #expect(large > 334_000_000 && large < 336_000_000, "large: \(large)")
        let base = ParameterBreakdown(config: try BertConfig.preset("base"))
        #expect(base.layers == 12)
        #expect(
            ParameterBreakdown(config: try BertConfig.preset("base"), pooler: false).total == 109_482_240 - 768 * 768
                - 768)
        for name in BertConfig.presetNames {
            try BertConfig.preset(name).validate()
        }
        // The count from a config is the size of the model it builds.
        for name in ["tiny", "mini"] {
            let config = try BertConfig.preset(name)
            #expect(try BertModel(config: config).parameterCount == ParameterBreakdown(config: config).total)
        }
    }

    @Test func checkpointParameterCountMatchesItsTensorsAndConfig() throws {
        let folder = ModelFixtures.url("tiny-pretraining")
        let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let breakdown = ParameterBreakdown(file: file)
        let floatCount = file.tensors.filter { [.F32, .F16, .BF16, .F64].contains($0.dtype) }.reduce(0) {
            $0 + $1.elementCount
        }
        #expect(breakdown.total == floatCount)
        #expect(breakdown.layers == 2)
        let config = try BertConfig(contentsOf: folder.appendingPathComponent("config.json"))
        let encoder = breakdown.entries.filter { !$0.component.contains("head") }.reduce(0) { $0 + $1.count }
        #expect(encoder == ParameterBreakdown(config: config).total)
        let model = try BertModel(folder: folder)
        #expect(encoder == model.parameterCount)
        #expect(breakdown.entries.contains { $0.component.contains("masked-LM head") })
        #expect(breakdown.entries.contains { $0.component.contains("next-sentence head") })
        #expect(breakdown.table().contains("total"))
    }

    // MARK: Save, load, initialisation

    /// The tiny fixture's config as a plain BertModel.
    static func tinyConfig() throws -> BertConfig {
        var config = try BertConfig(
            contentsOf: ModelFixtures.url("tiny-pretraining").appendingPathComponent("config.json"))
        config.architectures = ["BertModel"]
        return config
    }

    static let sampleBatch = EncoderBatch.padded(
        [[2, 7, 8, 9, 3], [2, 10, 3]], tokenTypeIds: [[0, 0, 0, 1, 1], [0, 0, 0]])

    @Test func saveAndLoadRoundTrip() throws {
        let config = try Self.tinyConfig()
        let model = try BertModel(config: config)
        model.initializeWeights(seed: 7)
        let m = try ScratchModel(copyWeights: false, copyConfig: false)
        defer { m.remove() }
        let folder = m.folder.appendingPathComponent("nested/out")  // save creates the folder
        try model.save(to: folder)
        let loaded = try BertModel(folder: folder)
        #expect(loaded.config == config)
        #expect(!config.extra.isEmpty, "the fixture's config has keys we keep without using")
        // Equality covers the kept keys: a lost or changed one is a different config.
        for key in config.extra.keys {
            var lost = loaded.config
            lost.extra.removeValue(forKey: key)
            #expect(lost != config, "\(key)")
            var changed = loaded.config
            changed.extra[key] = "changed"
            #expect(changed != config, "\(key)")
        }
        #expect(loaded.pooler != nil)
        #expect(loaded.parameters.data.toArray() == model.parameters.data.toArray())
        let a = try model.forward(Self.sampleBatch), b = try loaded.forward(Self.sampleBatch)
        #expect(a.lastHiddenState == b.lastHiddenState)
        #expect(a.poolerOutput == b.poolerOutput)
        #expect(a.lastHiddenState.allSatisfy { $0.isFinite })
        // Names as transformers' BertModel writes them: no prefix, no heads.
        let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(file.info("embeddings.word_embeddings.weight")?.shape == [99, 32])
        #expect(file.tensors.count == model.parameters.layout.tensors.count)
        #expect(file.tensors.allSatisfy { $0.dtype == .F32 })
    }

    @Test func savingIsDeterministic() throws {
        let config = try Self.tinyConfig()
        let m = try ScratchModel(copyWeights: false, copyConfig: false)
        defer { m.remove() }
        func save(seed: UInt64, _ name: String) throws -> (Data, Data) {
            let model = try BertModel(config: config)
            model.initializeWeights(seed: seed)
            let folder = m.folder.appendingPathComponent(name)
            try model.save(to: folder)
            return (
                try Data(contentsOf: folder.appendingPathComponent("model.safetensors")),
                try Data(contentsOf: folder.appendingPathComponent("config.json"))
            )
        }
        let first = try save(seed: 7, "a"), second = try save(seed: 7, "b"), other = try save(seed: 8, "c")
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
        #expect(first.0 != other.0)
        #expect(first.0.count == other.0.count)
        // Saving over an existing folder replaces the files.
        let model = try BertModel(config: config)
        model.initializeWeights(seed: 7)
        try model.save(to: m.folder.appendingPathComponent("c"))
        #expect(try Data(contentsOf: m.folder.appendingPathComponent("c/model.safetensors")) == first.0)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: m.folder.appendingPathComponent("c").path)
        #expect(Set(leftovers) == ["config.json", "model.safetensors"])
    }

    @Test func initializedStatistics() throws {
        let config = try Self.tinyConfig()  // initializer_range 0.2, pad_token_id 0
        let model = try BertModel(config: config)
        model.initializeWeights(seed: 7)
        let std = Float(config.initializerRange)
        var pooled: [Float] = []
        for t in model.parameters.layout.tensors {
            var values = model.parameters.values(t)
            if t.name.hasSuffix("LayerNorm.weight") {
                #expect(values.allSatisfy { $0 == 1 }, "\(t.name)")
            } else if t.name.hasSuffix(".bias") {
                #expect(values.allSatisfy { $0 == 0 }, "\(t.name)")
            } else {
                if t.name == "embeddings.word_embeddings.weight" {
                    let pad = config.padTokenId * config.hiddenSize
                    #expect(values[pad..<(pad + config.hiddenSize)].allSatisfy { $0 == 0 }, "padding row")
                    #expect(values[(pad + config.hiddenSize)...].allSatisfy { $0 != 0 })
                    values.removeSubrange(pad..<(pad + config.hiddenSize))
                }
                pooled += values
                guard values.count >= 1000 else { continue }
                let (mean, sd) = meanAndStd(values)
                #expect(abs(sd - std) <= 0.1 * std, "\(t.name): std \(sd), initializer_range \(std)")
                #expect(abs(mean) <= 4 * std / Float(values.count).squareRoot(), "\(t.name): mean \(mean)")
            }
        }
        let (mean, sd) = meanAndStd(pooled)
        #expect(abs(sd - std) <= 0.05 * std, "all weights: std \(sd)")
        #expect(abs(mean) <= 4 * std / Float(pooled.count).squareRoot())
        // Another pad token moves the zero row.
        var other = config
        other.padTokenId = 5
        let padded = try BertModel(config: other)
        padded.initializeWeights(seed: 7)
        let words = padded.parameters.values(padded.embeddings.wordEmbeddings)
        #expect(words[(5 * 32)..<(6 * 32)].allSatisfy { $0 == 0 })
        #expect(words[..<32].contains { $0 != 0 })
    }
}

private func meanAndStd(_ values: [Float]) -> (Float, Float) {
    let n = Double(values.count)
    let mean = values.reduce(0.0) { $0 + Double($1) } / n
    let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
    return (Float(mean), Float(variance.squareRoot()))
}
