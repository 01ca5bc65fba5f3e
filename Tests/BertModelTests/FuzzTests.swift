import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

// Every file format the project reads, mutated at random (fixed seeds, a bounded count): each case
// must end in a value or in one of the project's typed errors, never in a trap (which would end the
// test process), and a failed call must leave an existing output folder as it was.

/// Random damage to a valid file: truncation, flipped bytes, a spliced copy of a slice, a number
/// changed to an edge value, CRLF line ends, a byte-order mark, a dropped or doubled line.
struct FileMutator {
    var rng: SeededRandom
    static let numbers = [
        "0", "-1", "1", "2147483648", "4611686018427387904", "9223372036854775808", "NaN", "1e309", "-0.0",
        "99999999999999999999999",
    ]

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    /// One to three mutations of `file`.
    mutating func mutate(_ file: [UInt8]) -> [UInt8] {
        var d = file
        for _ in 0...below(3) { d = mutateOnce(d) }
        return d
    }

    mutating func mutateOnce(_ d: [UInt8]) -> [UInt8] {
        var d = d
        switch below(9) {
        case 0:  // truncate
            return Array(d.prefix(below(d.count + 1)))
        case 1:  // flip bytes
            for _ in 0...below(4) where !d.isEmpty { d[below(d.count)] ^= UInt8(1 + below(255)) }
            return d
        case 2:  // splice a slice of the file somewhere else
            guard !d.isEmpty else { return d }
            let a = below(d.count), b = min(d.count, a + 1 + below(64))
            d.insert(contentsOf: d[a..<b], at: below(d.count + 1))
            return d
        case 3, 4:  // a number changed to an edge value
            var runs: [Range<Int>] = []
            var i = 0
            while i < d.count {
                if (0x30...0x39).contains(d[i]) {
                    let start = i > 0 && d[i - 1] == UInt8(ascii: "-") ? i - 1 : i
                    while i < d.count && ((0x30...0x39).contains(d[i]) || d[i] == UInt8(ascii: ".")) { i += 1 }
                    runs.append(start..<i)
                } else {
                    i += 1
                }
            }
            guard !runs.isEmpty else { return d }
            let run = runs[below(runs.count)]
            d.replaceSubrange(run, with: Array(Self.numbers[below(Self.numbers.count)].utf8))
            return d
        case 5:  // CRLF
            var out: [UInt8] = []
            for b in d {
                if b == 0x0A { out.append(0x0D) }
                out.append(b)
            }
            return out
        case 6:  // byte-order mark
            return [0xEF, 0xBB, 0xBF] + d
        case 7:  // drop a line
            var lines = d.split(separator: 0x0A, omittingEmptySubsequences: false)
            guard lines.count > 1 else { return d }
            lines.remove(at: below(lines.count))
            return Array(lines.joined(separator: [0x0A]))
        default:  // double a line
            var lines = d.split(separator: 0x0A, omittingEmptySubsequences: false)
            guard !lines.isEmpty else { return d }
            let k = below(lines.count)
            lines.insert(lines[k], at: k)
            return Array(lines.joined(separator: [0x0A]))
        }
    }
}

/// A small model folder and data files of every format, written once per test.
struct FuzzFixtures {
    let root: URL
    let model: URL
    let tokenizer: BertTokenizer
    let config: BertConfig

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let words = "the a cat dog sat on mat was is it and of to in red blue big small house tree ran"
            .split(separator: " ").map(String.init)
        let tokens =
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?"] + words + words.map { "##" + $0 }
            + ["##s", "##ed"]
        tokenizer = try BertTokenizer(vocabulary: Vocabulary(tokens: tokens))
        var c = try BertConfig.preset("tiny")
        c.hiddenSize = 8
        c.numAttentionHeads = 2
        c.intermediateSize = 16
        c.numHiddenLayers = 1
        c.maxPositionEmbeddings = 64
        c.vocabSize = tokens.count
        config = c
        model = root.appendingPathComponent("model")
        let bert = try BertModel(config: c)
        bert.initializeWeights(seed: 1)
        try bert.save(to: model)
        try tokenizer.write(to: model)
        try Data(
            #"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#
                .utf8
        ).write(to: model.appendingPathComponent("modules.json"))
        try FileManager.default.createDirectory(
            at: model.appendingPathComponent("1_Pooling"), withIntermediateDirectories: true)
        try Data(
            #"{"word_embedding_dimension": 8, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}"#
                .utf8
        ).write(to: model.appendingPathComponent("1_Pooling/config.json"))
        try Data(#"{"max_seq_length": 32, "do_lower_case": false}"#.utf8)
            .write(to: model.appendingPathComponent("sentence_bert_config.json"))
    }

    func write(_ name: String, _ text: String) throws -> URL {
        let url = root.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

/// Whether an error is one the project defines (with its file and reason), not a raw system one.
func isTypedError(_ error: Error) -> Bool {
    error is BertError || error is TokenizerError || error is SafeTensorsError || error is InputTooLongError
}

/// Runs `cases` mutations of `file` through `read` (given the mutated file's URL); returns how
/// many ended in a value and how many in a typed error. Any other error fails the test.
@discardableResult
func fuzz(
    _ name: String, file: URL, cases: Int, seed: UInt64, _ read: (URL) throws -> Void
) throws -> (values: Int, errors: Int) {
    let original = [UInt8](try Data(contentsOf: file))
    defer { try? Data(original).write(to: file) }
    var mutator = FileMutator(seed: seed)
    var values = 0, errors = 0
    for k in 0..<cases {
        let mutated = mutator.mutate(original)
        try Data(mutated).write(to: file)
        do {
            try read(file)
            values += 1
        } catch {
            errors += 1
            #expect(
                isTypedError(error),
                "\(name) case \(k): an untyped error \(type(of: error)): \(error) for \(mutated.prefix(120))")
        }
    }
    // Every format has mutations that must be refused: a harness where all cases pass reads nothing.
    #expect(errors > 0, "\(name): no mutation was refused")
    print("fuzz \(name): \(cases) cases, \(values) read, \(errors) typed errors, no trap")
    return (values, errors)
}

/// Names, sizes and contents of every file below a folder (to compare before and after a call).
func snapshot(_ folder: URL) -> [String: Data] {
    var result: [String: Data] = [:]
    guard let walker = FileManager.default.enumerator(atPath: folder.path) else { return result }
    for case let relative as String in walker {
        let url = folder.appendingPathComponent(relative)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), !isFolder.boolValue {
            result[relative] = (try? Data(contentsOf: url)) ?? Data()
        }
    }
    return result
}

@Suite struct FuzzTests {
    static let cases = 300

    @Test func modelFilesEndInAValueOrATypedError() throws {
        let f = try FuzzFixtures()
        defer { f.remove() }
        let weights = f.model.appendingPathComponent("model.safetensors")
        try fuzz("model.safetensors", file: weights, cases: Self.cases, seed: 1) { url in
            let file = try SafeTensorsFile(contentsOf: url)
            for t in file.tensors where t.dtype == .F32 {
                var values = [Float](repeating: 0, count: t.shape.reduce(1, *))
                try values.withUnsafeMutableBufferPointer { try file.copyFloats(t.name, into: $0) }
            }
            _ = try BertModel(folder: f.model)
        }
        try fuzz("config.json", file: f.model.appendingPathComponent("config.json"), cases: Self.cases, seed: 2) { _ in
            let model = try BertModel(folder: f.model)
            _ = try model.forward(EncoderBatch(batchSize: 1, sequenceLength: 3, inputIds: [2, 9, 3]))
        }
        try fuzz("modules.json", file: f.model.appendingPathComponent("modules.json"), cases: Self.cases, seed: 3) {
            _ in
            let settings = try SentenceEmbeddingSettings(folder: f.model)
            try settings.check(against: f.config)
        }
        try fuzz(
            "1_Pooling/config.json", file: f.model.appendingPathComponent("1_Pooling/config.json"),
            cases: Self.cases, seed: 4
        ) { _ in
            let embedder = try SentenceEmbedder(folder: f.model)
            let v = try embedder.embed(["the cat sat"], batchSize: 1)
            #expect(v[0].allSatisfy { $0.isFinite })
        }
        try fuzz(
            "sentence_bert_config.json", file: f.model.appendingPathComponent("sentence_bert_config.json"),
            cases: Self.cases, seed: 5
        ) { _ in
            _ = try SentenceEmbedder(folder: f.model).embed(["the cat sat on the mat"], batchSize: 1)
        }
    }

    /// pytorch_model.bin as torch.save writes it (a zip of a pickle and storages), a shard index,
    /// and a pickle on its own: damaged, each is read or refused, never trapped on or run.
    @Test func pytorchCheckpointsEndInAValueOrATypedError() throws {
        let f = try FuzzFixtures()
        defer { f.remove() }
        let pytorch = ModelFixtures.url("pytorch")
        for (source, seed) in [("tiny-pretraining-bin", UInt64(41)), ("tiny-sharded-bin", 42)] {
            let folder = f.root.appendingPathComponent(source)
            try FileManager.default.copyItem(at: pytorch.appendingPathComponent(source), to: folder)
            let file = source == "tiny-sharded-bin" ? "pytorch_model.bin.index.json" : "pytorch_model.bin"
            try fuzz("\(source)/\(file)", file: folder.appendingPathComponent(file), cases: Self.cases, seed: seed) {
                _ in
                let weights = try ModelWeights.open(in: folder)
                for t in weights.tensors where t.dtype == .F32 { _ = try weights.floats(t.name) }
                _ = try BertForPreTraining(folder: folder)
            }
        }
        let mixed = f.root.appendingPathComponent("mixed.bin")
        try FileManager.default.copyItem(at: pytorch.appendingPathComponent("mixed.bin"), to: mixed)
        try fuzz("mixed.bin", file: mixed, cases: Self.cases, seed: 43) { url in
            let weights = try ModelWeights.open(url)
            for t in weights.tensors { _ = try weights.withBytes(t.name) { $0.count } }
        }
    }

    @Test func tokenizerFilesEndInAValueOrATypedError() throws {
        let f = try FuzzFixtures()
        defer { f.remove() }
        let text = "The cat sat on the mat, and the dog ran? [MASK] big houses"
        try fuzz("vocab.txt", file: f.model.appendingPathComponent("vocab.txt"), cases: Self.cases, seed: 11) { url in
            let t = try BertTokenizer(vocabFile: url)
            _ = try t.encode(text, pair: "a red tree")
        }
        try fuzz(
            "tokenizer.json", file: f.model.appendingPathComponent("tokenizer.json"), cases: Self.cases, seed: 12
        ) { url in
            let t = try BertTokenizer(tokenizerJSON: url)
            _ = try t.encode(text, pair: "a red tree")
            _ = t.encodeIdsBatch([text, "", "trees"])
        }
        try fuzz(
            "tokenizer_config.json", file: f.model.appendingPathComponent("tokenizer_config.json"),
            cases: Self.cases, seed: 13
        ) { _ in
            _ = try BertTokenizer(modelFolder: f.model).encode(text)
        }
    }

    @Test func labeledDataEndsInAValueOrATypedError() throws {
        let f = try FuzzFixtures()
        defer { f.remove() }
        let csv = try f.write(
            "data.csv", "text,text_pair,label\n\"the cat, sat\",a dog,1\nthe mat,\"a \"\"red\"\" tree\",0\nit ran,,1\n")
        try fuzz("CSV", file: csv, cases: Self.cases, seed: 21) { url in
            _ = try readLabeledExamples(url)
        }
        let tsv = try f.write("data.tsv", "text\tlabel\nthe cat sat\t1\nthe dog ran\t0\nit was big\t2.5\n")
        try fuzz("TSV", file: tsv, cases: Self.cases, seed: 22) { url in _ = try readLabeledExamples(url) }
        let jsonl = try f.write(
            "data.jsonl",
            "{\"text\": \"the cat\", \"label\": 1}\n{\"text\": \"a dog\", \"text_pair\": \"ran\", \"label\": 0}\n")
        try fuzz("JSON Lines", file: jsonl, cases: Self.cases, seed: 23) { url in _ = try readLabeledExamples(url) }
        let conll = try f.write(
            "data.conll", "-DOCSTART- O\n\nthe O\ncat B-ANIMAL\nsat O\n\na O\nred B-COLOR\ntree I-COLOR\n")
        try fuzz("CoNLL", file: conll, cases: Self.cases, seed: 24) { url in
            let sentences = try readTaggedSentences(url)
            for s in sentences { _ = entities(s.tags) }
        }
        let squad = try f.write(
            "squad.json",
            #"{"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "The cat sat on the mat near the big house.", "qas": [{"id": "q1", "question": "Where did the cat sit?", "answers": [{"text": "on the mat", "answer_start": 12}], "is_impossible": false}, {"id": "q2", "question": "What is red?", "answers": [], "is_impossible": true}]}]}]}"#
        )
        try fuzz("SQuAD", file: squad, cases: Self.cases, seed: 25) { url in _ = try readSquad(url) }
        let choice = try f.write(
            "choice.jsonl",
            "{\"context\": \"the cat\", \"endings\": [\"sat\", \"ran\", \"was red\"], \"label\": 0}\n"
                + "{\"context\": \"a dog\", \"endings\": [\"is big\", \"is small\", \"ran\"], \"label\": 2}\n")
        try fuzz("choice JSON Lines", file: choice, cases: Self.cases, seed: 26) { url in
            _ = try readChoiceExamples(url)
        }
    }

    @Test func shardsAndCheckpointsEndInAValueOrATypedError() throws {
        let f = try FuzzFixtures()
        defer { f.remove() }
        var lines: [String] = []
        let words = "the a cat dog sat on mat was is it and of to in red blue big small house tree ran"
            .split(separator: " ")
        var rng = SeededRandom(seed: 5)
        for d in 0..<30 {
            for _ in 0..<(2 + d % 3) {
                lines.append(
                    (0..<(4 + Int(rng.next() % 6))).map { _ in String(words[Int(rng.next() % 21)]) }.joined(
                        separator: " ") + ".")
            }
            lines.append("")
        }
        let corpus = try f.write("corpus.txt", lines.joined(separator: "\n"))
        var shardOptions = ShardOptions()
        shardOptions.data.maxSeqLength = 24
        shardOptions.data.maxPredictionsPerSeq = 4
        shardOptions.shardCount = 3
        shardOptions.heldOutEvery = 10
        let shards = f.root.appendingPathComponent("shards")
        try preparePretrainingShards(files: [corpus], tokenizer: f.tokenizer, options: shardOptions, folder: shards)
        func readAll() throws {
            let set = try PretrainingShardSet(folder: shards)
            for p in 0..<set.count { _ = try set.instance(epoch: p % 2, position: p) }
            _ = try set.heldOut(limit: 8)
        }
        try fuzz("manifest.json", file: shards.appendingPathComponent("manifest.json"), cases: Self.cases, seed: 31) {
            _ in try readAll()
        }
        try fuzz("shard file", file: shards.appendingPathComponent("shard-00001.bin"), cases: Self.cases, seed: 32) {
            _ in try readAll()
        }

        // A run with a checkpoint; its state and pointer damaged, a resume must refuse them and leave
        // the run folder as it was.
        var options = PretrainingRunOptions()
        options.steps = 2
        options.batchSize = 4
        options.checkpointEvery = 1
        options.evalEvery = 0
        options.data = shardOptions.data
        let run = f.root.appendingPathComponent("run")
        func model() throws -> BertForPreTraining {
            let m = try BertForPreTraining(config: f.config)
            m.initializeWeights(seed: 3)
            return m
        }
        try PretrainingRun(
            model: try model(), tokenizer: f.tokenizer, shards: try PretrainingShardSet(folder: shards),
            options: options, output: run
        ).run(resume: false) { _ in }
        let checkpoint = run.appendingPathComponent("checkpoints/step-00000002")
        for (name, seed) in [("state.json", UInt64(33)), ("../latest", 34), ("optimizer.safetensors", 35)] {
            let target = checkpoint.appendingPathComponent(name).standardizedFileURL
            let before = snapshot(run)
            var changedByFailure = 0
            try fuzz("checkpoint \(target.lastPathComponent)", file: target, cases: 60, seed: seed) { url in
                let damaged = snapshot(run)
                do {
                    try PretrainingRun(
                        model: try model(), tokenizer: f.tokenizer, shards: try PretrainingShardSet(folder: shards),
                        options: options, output: run
                    ).run(resume: true) { _ in }
                } catch {
                    if snapshot(run) != damaged { changedByFailure += 1 }
                    throw error
                }
                // A resume that succeeded rewrote the run: put the original back for the next case.
                for (relative, data) in before { try data.write(to: run.appendingPathComponent(relative)) }
            }
            #expect(changedByFailure == 0, "\(name): a failed resume changed the run folder")
        }
    }

    /// The one writer of output folders: a fill that fails (a full disk, a bad value) leaves the
    /// folder that was there, and no temporary sibling.
    @Test func aFailedWriteLeavesTheOldFolderWhole() throws {
        let f = try FuzzFixtures()
        defer { f.remove() }
        let before = snapshot(f.model)
        let output = try OutputFolder(f.model, overwrite: true)
        struct Full: Error {}
        for stage in 0..<3 {
            #expect(throws: Full.self) {
                try output.replace { folder in
                    try Data("new".utf8).write(to: folder.appendingPathComponent("config.json"))
                    if stage == 0 { throw Full() }
                    try Data(count: 1000).write(to: folder.appendingPathComponent("model.safetensors"))
                    if stage >= 1 { throw Full() }
                }
            }
            #expect(snapshot(f.model) == before)
        }
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: f.root.path).allSatisfy { !$0.contains(".tmp-") })
        // Without --overwrite a folder that holds something is refused before anything is written.
        #expect(throws: BertError.self) { try OutputFolder(f.model, overwrite: false) }
        // A model with NaN weights is never written.
        let bad = try BertModel(config: f.config)
        bad.parameters.data.pointer[5] = .nan
        let target = f.root.appendingPathComponent("nan-model")
        #expect(throws: BertError.self) { try bad.save(to: target) }
        #expect(!FileManager.default.fileExists(atPath: target.appendingPathComponent("model.safetensors").path))
    }
}
