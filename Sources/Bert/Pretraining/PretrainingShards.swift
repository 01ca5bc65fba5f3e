import BertCompute
import BertTokenizer
import Foundation

// Pretraining data on disk, so the corpus is not limited by memory.
//
// `preparePretrainingShards` streams the corpus document by document: documents are gathered in
// chunks (a few thousand at a time), each chunk is turned into instances by the reference rules
// (NotNext spans come from other documents of the same chunk, as the reference does per input
// file), and every instance is appended to one of N shard files chosen at random, so each shard is
// a mixture of the whole corpus. The head of every `heldOutEvery`-th document (at most
// `heldOutDocuments`, no more than a tenth of the corpus: `HeldOutSplit`) is held out for
// evaluation (heldout.bin).
// Masks are not stored: they are a function of the seed and the instance's index (and the epoch
// with dynamic masking), so the same seed gives the same instances and masks.
//
// A shard file: the 8 bytes "BERTSHD1", then records of
//   u16 token count n, u16 length of segment A (from [CLS] to the first [SEP], inclusive),
//   u8 1 if B is a random span (NotNext) else 0, n × i32 token ids (all little-endian).
// manifest.json names the shards with their instance counts and the settings they were made with;
// it is written last, so a folder without one is an unfinished preparation.

/// Where the instances of a run come from: `count` instances in an order that is a function of the
/// seed and the epoch. `index` is the instance's stable identity (its masks derive from it).
public protocol PretrainingInstanceSource: AnyObject {
    /// Instances in one epoch.
    var count: Int { get }
    /// The instance at `position` (0..<count) of `epoch`'s order, with its stable index.
    func instance(epoch: Int, position: Int) throws -> (index: Int, instance: PretrainingInstance)
    /// What identifies the data (the ranks of a job compare it): for shards, their manifest.
    var identity: String { get }
}

extension PretrainingInstanceSource {
    /// The count, and the first and last instances' tokens of epoch 0.
    public var identity: String {
        let first = try? instance(epoch: 0, position: 0).instance.tokens
        let last = try? instance(epoch: 0, position: count - 1).instance.tokens
        return "\(count) instances, first \(first ?? []), last \(last ?? [])"
    }
}

/// Instances held in memory, visited in a seeded permutation per epoch.
public final class InMemoryInstances: PretrainingInstanceSource {
    let instances: [PretrainingInstance]
    let seed: UInt64
    private var cached: (epoch: Int, order: [Int])?

    /// The instances, visited in an order derived from `seed` and the epoch.
    public init(_ instances: [PretrainingInstance], seed: UInt64) {
        self.instances = instances
        self.seed = seed
    }

    /// Instances held.
    public var count: Int { instances.count }

    /// The instance at `position` of `epoch`'s permutation, with its index in the array.
    public func instance(epoch: Int, position: Int) -> (index: Int, instance: PretrainingInstance) {
        if cached?.epoch != epoch {
            cached = (epoch, seededPermutation(count, seed: Seeds.instanceOrder(seed, epoch: epoch)))
        }
        let index = cached!.order[position]
        return (index, instances[index])
    }
}

/// Calls `body` with each document of the files (its lines, or its sentences with
/// `splitSentences`), reading a few MB at a time. Documents are separated by blank lines.
public func forEachDocument(files: [URL], splitSentences: Bool, _ body: ([String]) throws -> Void) throws {
    for url in files {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
            throw BertError.fileAccess(path: url.path, reason: "is a folder, not a file")
        }
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch {
            throw BertError.fileAccess(path: url.path, reason: "cannot open: \(fileErrorReason(error, path: url.path))")
        }
        defer { try? handle.close() }
        var current: [String] = []
        var pending: [UInt8] = []
        var lineNumber = 0
        func line(_ bytes: ArraySlice<UInt8>) throws {
            lineNumber += 1
            guard let text = String(bytes: bytes, encoding: .utf8) else {
                throw BertError.malformedFile(path: "\(url.path):\(lineNumber)", reason: "not valid UTF-8")
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty {
                if !current.isEmpty { try body(current) }
                current = []
            } else if splitSentences {
                current.append(contentsOf: splitIntoSentences(trimmed))
            } else {
                current.append(trimmed)
            }
        }
        while true {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 1 << 22) } catch {
                throw BertError.malformedFile(
                    path: url.path, reason: "read failed: \(fileErrorReason(error, path: url.path))")
            }
            guard let chunk, !chunk.isEmpty else { break }
            pending.append(contentsOf: chunk)
            var start = 0
            while let nl = pending[start...].firstIndex(of: 0x0A) {
                try line(pending[start..<nl])
                start = nl + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { try line(pending[...]) }
        if !current.isEmpty { try body(current) }
    }
}

/// `forEachDocument` with each document's sentences as WordPiece ids (empty sentences dropped,
/// documents left empty skipped).
public func forEachTokenizedDocument(
    files: [URL], tokenizer: BertTokenizer, splitSentences: Bool,
    _ body: ([[Int32]]) throws -> Void
) throws {
    try forEachDocument(files: files, splitSentences: splitSentences) { sentences in
        let ids = tokenizer.encodeIdsBatch(sentences, addSpecialTokens: false)
        let document = (0..<ids.count).map { Array(ids[$0]) }.filter { !$0.isEmpty }
        if !document.isEmpty { try body(document) }
    }
}

/// The training instances of a group of documents, `dupeFactor` times over, NotNext spans drawn
/// from the same group (the in-memory run's whole corpus, or one chunk of the shards).
func trainingInstances(
    _ documents: [[[Int32]]], builder: PretrainingDataBuilder, dupeFactor: Int,
    rng: inout SeededRandom, _ emit: (PretrainingInstance) throws -> Void
) rethrows {
    for _ in 0..<max(1, dupeFactor) {
        for d in documents.indices {
            for instance in builder.instances(document: d, of: documents, rng: &rng) { try emit(instance) }
        }
    }
}

/// The held-out text, chosen as the corpus streams by. Every `every`-th document (at most
/// `limit`) gives its head, its first sentences up to `tokensPerDocument` tokens (at least one
/// sentence), to evaluation, and the rest of it to training: a corpus of two novels holds out a
/// few pages, not a novel. At the end no more than `maxShare` of the corpus's tokens stay held out
/// (the last heads chosen go back to training): three short documents do not lose one to evaluation.
struct HeldOutSplit {
    let every: Int, limit: Int, tokensPerDocument: Int
    var maxShare = 0.1
    private(set) var held: [[[Int32]]] = []
    private var heldTokens = 0, corpusTokens = 0, documents = 0

    init(every: Int, limit: Int, tokensPerDocument: Int) {
        self.every = max(1, every)
        self.limit = max(0, limit)
        self.tokensPerDocument = max(1, tokensPerDocument)
    }

    /// Takes the next document of the corpus; returns what of it is trained on (nil: nothing).
    mutating func take(_ document: [[Int32]]) -> [[Int32]]? {
        defer { documents += 1 }
        let tokens = document.reduce(0) { $0 + $1.count }
        corpusTokens += tokens
        guard held.count < limit, documents % every == 0, !document.isEmpty else { return document }
        var cut = 0, headTokens = 0
        while cut < document.count && (cut == 0 || headTokens + document[cut].count <= tokensPerDocument) {
            headTokens += document[cut].count
            cut += 1
        }
        held.append(Array(document[..<cut]))
        heldTokens += headTokens
        return cut < document.count ? Array(document[cut...]) : nil
    }

    /// Ends the split: the heads past `maxShare` of the corpus's tokens, returned for training.
    mutating func finish() -> [[[Int32]]] {
        var returned: [[[Int32]]] = []
        while !held.isEmpty && Double(heldTokens) > maxShare * Double(corpusTokens) {
            let head = held.removeLast()
            heldTokens -= head.reduce(0) { $0 + $1.count }
            returned.append(head)
        }
        return returned.reversed()
    }
}

/// Instances of the held-out documents, NotNext spans drawn from each other.
func heldOutInstances(_ documents: [[[Int32]]], builder: PretrainingDataBuilder, seed: UInt64) -> [PretrainingInstance]
{
    var rng = SeededRandom(seed: Seeds.heldOutInstances(seed))
    var result: [PretrainingInstance] = []
    for d in documents.indices { result += builder.instances(document: d, of: documents, rng: &rng) }
    return result
}

/// Settings of a shard preparation (recorded in manifest.json).
public struct ShardOptions: Sendable {
    /// How instances are made (their masks are drawn when training, not stored).
    public var data = PretrainingDataOptions()
    /// The seed of the instances, their shards, and their order in training.
    public var seed: UInt64 = 12345
    /// How many times the corpus is turned into instances (with other random choices each time).
    public var dupeFactor = 1
    /// Shard files the instances are spread over, 1...65536.
    public var shardCount = 16
    /// Documents gathered before instances are made from them (NotNext spans come from the same chunk).
    public var chunkDocuments = 4096
    /// Documents held out for evaluation: every `heldOutEvery`-th document of the corpus (so they
    /// come from all of it, not one source), at most `heldOutDocuments`.
    public var heldOutDocuments = 64
    /// The spacing of the held-out documents: every how-many-th gives its head to evaluation.
    public var heldOutEvery = 100
    /// Tokens of a held-out document's head (nil: four instances' worth, 4 × max_seq_length).
    public var heldOutTokensPerDocument: Int? = nil
    /// Splits each non-blank line into sentences (paragraph input) instead of reading one
    /// sentence a line.
    public var splitSentences = false
    /// The defaults: 16 shards, seed 12345, dupe factor 1, chunks of 4096 documents, up to 64
    /// held out, every 100th.
    public init() {}

    /// What decides the shards' content, as recorded in manifest.json ("preparation"): a run that
    /// resumes on shards made from another corpus or with other settings is refused, not trained
    /// on the old data silently. Corpus files are named by file name and size.
    public func preparation(files: [URL], tokenizer: BertTokenizer) -> [String: String] {
        // By name and size, not the full path: a run folder and its corpus may move together.
        let corpus = files.map { f -> String in
            let size = (try? FileManager.default.attributesOfItem(atPath: f.path)[.size] as? Int) ?? -1
            return "\(f.lastPathComponent) (\(size) bytes)"
        }
        return [
            "corpus": corpus.joined(separator: ", "), "seq_len": String(data.maxSeqLength),
            "short_seq_prob": String(data.shortSeqProb), "dupe_factor": String(dupeFactor),
            "shards": String(shardCount), "seed": String(seed), "split_sentences": String(splitSentences),
            "held_out": "\(heldOutDocuments) every \(heldOutEvery)",
        ].merging(Self.tokenization(tokenizer)) { a, _ in a }
    }

    /// What decides the ids in the shards: the vocabulary (its size and a hash of its tokens) and
    /// the normalizer. Training on them with another tokenizer would pair the model with the
    /// wrong vocabulary.
    public static func tokenization(_ tokenizer: BertTokenizer) -> [String: String] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a over the tokens, each ended by a newline
        for token in tokenizer.vocabulary.tokens {
            for b in token.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01B3 }
            hash = (hash ^ 0x0A) &* 0x100_0000_01B3
        }
        let n = tokenizer.normalizer
        return [
            "vocab_size": String(tokenizer.vocabulary.count), "vocabulary": String(hash, radix: 16),
            "normalizer":
                "lowercase \(n.lowercase), strip_accents \(n.stripAccents.map(String.init) ?? "as lowercase"), "
                + "chinese \(n.handleChineseChars), clean \(n.cleanText)",
        ]
    }
}

let shardMagic = Array("BERTSHD1".utf8)

/// Appends records to a shard file through a buffer.
final class ShardFileWriter {
    let handle: FileHandle
    var buffer: [UInt8] = []
    private(set) var count = 0

    init(url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: Data(shardMagic)) else {
            throw BertError.fileAccess(path: url.path, reason: "cannot create")
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    func append(_ instance: PretrainingInstance) throws {
        let n = instance.tokens.count
        let aLength = instance.segmentIds.firstIndex(of: 1) ?? n
        buffer.append(UInt8(n & 0xFF)); buffer.append(UInt8(n >> 8))
        buffer.append(UInt8(aLength & 0xFF)); buffer.append(UInt8(aLength >> 8))
        buffer.append(instance.isRandomNext ? 1 : 0)
        for t in instance.tokens {
            let u = UInt32(bitPattern: t)
            buffer.append(UInt8(u & 0xFF)); buffer.append(UInt8((u >> 8) & 0xFF))
            buffer.append(UInt8((u >> 16) & 0xFF)); buffer.append(UInt8(u >> 24))
        }
        count += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        if buffer.isEmpty { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        try handle.synchronize()
        try handle.close()
    }
}

/// Streams the corpus into shards in `folder` (created; an existing manifest is replaced) and
/// returns them opened. Memory holds one chunk of documents at a time.
@discardableResult
public func preparePretrainingShards(
    files: [URL], tokenizer: BertTokenizer, options: ShardOptions, folder: URL,
    progress: (Int, Int) -> Void = { _, _ in }
) throws -> PretrainingShardSet {
    guard options.shardCount >= 1 && options.shardCount <= 65536 else {
        throw BertError.invalidInput("the shard count must be between 1 and 65536")
    }
    guard options.data.maxSeqLength <= Int(UInt16.max) else {
        throw BertError.invalidInput("max sequence length too large for a shard")
    }
    try ensureOpenFiles(options.shardCount + 2)
    let builder = try PretrainingDataBuilder(tokenizer: tokenizer, options: options.data)
    let fm = FileManager.default
    try fm.createDirectory(at: folder, withIntermediateDirectories: true)
    let manifestURL = folder.appendingPathComponent("manifest.json")
    try? fm.removeItem(at: manifestURL)
    func name(_ i: Int) -> String { String(format: "shard-%05d.bin", i) }
    let writers = try (0..<options.shardCount).map {
        try ShardFileWriter(url: folder.appendingPathComponent(name($0) + ".partial"))
    }
    let heldOutWriter = try ShardFileWriter(url: folder.appendingPathComponent("heldout.bin.partial"))
    var chunk: [[[Int32]]] = []
    var split = HeldOutSplit(
        every: options.heldOutEvery, limit: options.heldOutDocuments,
        tokensPerDocument: options.heldOutTokensPerDocument ?? 4 * options.data.maxSeqLength)
    var chunkIndex = 0, documents = 0, tokens = 0
    func makeInstances() throws {
        if chunk.isEmpty { return }
        var rng = SeededRandom(seed: Seeds.chunkInstances(options.seed, chunk: chunkIndex))
        var placement = SeededRandom(seed: Seeds.shardPlacement(options.seed, chunk: chunkIndex))
        try trainingInstances(chunk, builder: builder, dupeFactor: options.dupeFactor, rng: &rng) { instance in
            try writers[Int(placement.next() % UInt64(writers.count))].append(instance)
        }
        chunkIndex += 1
        chunk.removeAll(keepingCapacity: true)
        progress(documents, writers.reduce(0) { $0 + $1.count })
    }
    try forEachTokenizedDocument(files: files, tokenizer: tokenizer, splitSentences: options.splitSentences) {
        document in
        tokens += document.reduce(0) { $0 + $1.count }
        if let trained = split.take(document) { chunk.append(trained) }
        documents += 1
        if chunk.count >= options.chunkDocuments { try makeInstances() }
    }
    chunk += split.finish()
    let evalDocuments = split.held
    try makeInstances()
    // The held-out instances use only each other (NotNext spans from other held-out documents).
    for inst in heldOutInstances(evalDocuments, builder: builder, seed: options.seed) { try heldOutWriter.append(inst) }
    guard documents >= 2 else {
        throw BertError.invalidInput("pretraining needs at least 2 documents (blank lines separate documents)")
    }
    var shards: [[String: Any]] = []
    for (i, w) in writers.enumerated() {
        try w.close()
        let final = folder.appendingPathComponent(name(i))
        try? fm.removeItem(at: final)
        try fm.moveItem(at: folder.appendingPathComponent(name(i) + ".partial"), to: final)
        shards.append(["file": name(i), "instances": w.count])
    }
    try heldOutWriter.close()
    let heldOutURL = folder.appendingPathComponent("heldout.bin")
    try? fm.removeItem(at: heldOutURL)
    try fm.moveItem(at: folder.appendingPathComponent("heldout.bin.partial"), to: heldOutURL)
    guard writers.contains(where: { $0.count > 0 }) else {
        throw BertError.invalidInput("the corpus gives no training instances")
    }
    let manifest: [String: Any] = [
        "format": "swift-bert pretraining shards", "version": 1,
        "shards": shards,
        "held_out": ["file": "heldout.bin", "instances": heldOutWriter.count, "documents": evalDocuments.count],
        "documents": documents, "tokens": tokens, "vocab_size": tokenizer.vocabulary.count,
        "seed": String(options.seed), "dupe_factor": options.dupeFactor, "max_seq_length": options.data.maxSeqLength,
        "short_seq_prob": options.data.shortSeqProb, "chunk_documents": options.chunkDocuments,
        "preparation": options.preparation(files: files, tokenizer: tokenizer),
    ]
    let json = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
    try json.write(to: manifestURL, options: .atomic)
    return try PretrainingShardSet(folder: folder)
}

/// Raises the open-file limit to hold `count` more files at once (every shard is written at the
/// same time), or says why it cannot, before any file is made.
func ensureOpenFiles(_ count: Int) throws {
    var limit = rlimit()
    guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return }
    let needed = rlim_t(count + 64)  // standard streams, the corpus, libraries
    if limit.rlim_cur >= needed { return }
    if limit.rlim_max >= needed {
        limit.rlim_cur = needed
        if setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 { return }
    }
    throw BertError.invalidInput(
        "\(count - 2) shards need \(needed) open files, more than this process may open (\(limit.rlim_max)); use "
            + "fewer shards or raise the limit (ulimit -n)")
}

#if os(Linux)
    private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#else
    private let RLIMIT_NOFILE_VALUE = RLIMIT_NOFILE
#endif

/// One shard file, memory-mapped, with the offsets of its records.
final class ShardFile {
    let url: URL
    let data: Data
    let offsets: [Int]

    init(url: URL, expected: Int) throws {
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw BertError.fileAccess(path: url.path, reason: "cannot read: \(fileErrorReason(error, path: url.path))")
        }
        guard data.count >= 8, Array(data.prefix(8)) == shardMagic else {
            throw BertError.malformedFile(path: url.path, reason: "not a swift-bert shard")
        }
        var offsets: [Int] = []
        offsets.reserveCapacity(min(max(expected, 0), data.count / 5))  // a record takes 5 bytes or more
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var at = 8
            while at < raw.count {
                guard at + 5 <= raw.count else {
                    throw BertError.malformedFile(path: url.path, reason: "truncated record at byte \(at)")
                }
                let (n, a) = Self.header(raw, at)
                guard n >= 3, a >= 2, a < n, raw[at + 4] <= 1, at + 5 + 4 * n <= raw.count else {
                    throw BertError.malformedFile(path: url.path, reason: "corrupt record at byte \(at)")
                }
                offsets.append(at)
                at += 5 + 4 * n
            }
        }
        guard offsets.count == expected else {
            throw BertError.malformedFile(
                path: url.path, reason: "\(offsets.count) instances, the manifest says \(expected)")
        }
        self.url = url
        self.offsets = offsets
    }

    /// A record's token count and segment-A length (two little-endian u16).
    static func header(_ raw: UnsafeRawBufferPointer, _ at: Int) -> (n: Int, a: Int) {
        (Int(raw[at]) | Int(raw[at + 1]) << 8, Int(raw[at + 2]) | Int(raw[at + 3]) << 8)
    }

    func instance(_ i: Int, vocabularySize: Int) throws -> PretrainingInstance {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let at = offsets[i]
            let (n, a) = Self.header(raw, at)
            var tokens = [Int32](repeating: 0, count: n)
            for j in 0..<n {
                let t = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 5 + 4 * j, as: Int32.self))
                guard t >= 0 && Int(t) < vocabularySize else {
                    throw BertError.malformedFile(
                        path: url.path, reason: "token id \(t) outside the vocabulary (size \(vocabularySize))")
                }
                tokens[j] = t
            }
            let segments = [Int32](repeating: 0, count: a) + [Int32](repeating: 1, count: n - a)
            return PretrainingInstance(tokens: tokens, segmentIds: segments, isRandomNext: raw[at + 4] == 1)
        }
    }
}

/// Prepared shards, read back: the training instances in a seeded order (shards in a random order
/// per epoch, instances in a random order within each), and the held-out instances. Only the
/// shards in use are opened (memory-mapped), so the corpus can be larger than memory.
public final class PretrainingShardSet: PretrainingInstanceSource {
    /// The folder holding manifest.json and the shard files.
    public let folder: URL
    /// Size of the vocabulary the shards were made with (the manifest's vocab_size).
    public let vocabularySize: Int
    /// The longest instance in tokens the shards were made for (the manifest's max_seq_length).
    public let maxSeqLength: Int
    /// The preparation's seed; the instances' order in each epoch derives from it.
    public let seed: UInt64
    let files: [String]
    let counts: [Int]
    let bases: [Int]
    /// Training instances in all the shards.
    public let count: Int
    /// The manifest's shards, counts, seed, documents and preparation.
    public var identity: String {
        "shards \(zip(files, counts).map { "\($0):\($1)" }) seed \(seed) documents \(documents) held out "
            + "\(heldOutCount) preparation \(preparation.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })"
    }
    let heldOutFile: String
    /// Instances held out for evaluation (heldout.bin).
    public let heldOutCount: Int
    /// Documents in the corpus the shards were made from (0 when the manifest does not say).
    public let documents: Int
    /// `ShardOptions.preparation` of the run that made these shards (empty for older manifests).
    public let preparation: [String: String]
    private var open: [Int: ShardFile] = [:]
    private var order: (epoch: Int, shards: [Int])?
    private var within: [Int: (epoch: Int, order: [Int])] = [:]

    /// Opens prepared shards: reads and checks manifest.json; each shard file is mapped
    /// only when used.
    public init(folder: URL) throws {
        self.folder = folder
        let url = folder.appendingPathComponent("manifest.json")
        guard let data = try? Data(contentsOf: url) else {
            throw BertError.malformedFile(
                path: folder.path, reason: "no manifest.json (not prepared, or the preparation did not finish)")
        }
        guard let m = try? JSONSerialization.jsonObject(with: droppingByteOrderMark(data)) as? [String: Any],
            m["format"] as? String == "swift-bert pretraining shards", m["version"] as? Int == 1,
            let shards = m["shards"] as? [[String: Any]], let held = m["held_out"] as? [String: Any],
            let vocab = m["vocab_size"] as? Int, let seq = m["max_seq_length"] as? Int,
            let seedText = m["seed"] as? String, let seed = UInt64(seedText)
        else {
            throw BertError.malformedFile(path: url.path, reason: "not a swift-bert shard manifest (version 1)")
        }
        // A file name inside the folder and an instance count, or the entry is named as wrong.
        func entry(_ e: [String: Any], _ what: String) throws -> (String, Int) {
            guard let f = e["file"] as? String, !f.contains("/"), !f.isEmpty, f != "..", f != "." else {
                throw BertError.malformedFile(path: url.path, reason: "\(what) has no file name inside the folder")
            }
            guard let n = e["instances"] as? Int, (0...Int(Int32.max)).contains(n) else {
                throw BertError.malformedFile(
                    path: url.path, reason: "\(what) (\(f)) has no instance count in 0...\(Int32.max)")
            }
            return (f, n)
        }
        var files: [String] = [], counts: [Int] = []
        for (k, s) in shards.enumerated() {
            let (f, n) = try entry(s, "shard entry \(k)")
            files.append(f); counts.append(n)
        }
        let (hf, hn) = try entry(held, "held_out")
        guard vocab > 0, vocab <= Int(Int32.max) else {
            throw BertError.malformedFile(path: url.path, reason: "vocab_size \(vocab) is outside 1...\(Int32.max)")
        }
        guard (1...Int(UInt16.max)).contains(seq) else {
            throw BertError.malformedFile(path: url.path, reason: "max_seq_length \(seq) is outside 1...\(UInt16.max)")
        }
        for f in files + [hf] where !FileManager.default.fileExists(atPath: folder.appendingPathComponent(f).path) {
            throw BertError.fileAccess(path: "\(folder.path)/\(f)", reason: "missing (the manifest names it)")
        }
        self.files = files
        self.counts = counts
        var bases: [Int] = [], total = 0
        for n in counts {
            bases.append(total)
            let (sum, overflow) = total.addingReportingOverflow(n)
            guard !overflow, sum <= Int(Int32.max) else {
                throw BertError.malformedFile(path: url.path, reason: "more than \(Int32.max) instances in all")
            }
            total = sum
        }
        self.bases = bases
        count = total
        heldOutFile = hf
        heldOutCount = hn
        vocabularySize = vocab
        maxSeqLength = seq
        self.seed = seed
        documents = m["documents"] as? Int ?? 0
        preparation = m["preparation"] as? [String: String] ?? [:]
        guard total > 0 else { throw BertError.malformedFile(path: url.path, reason: "no training instances") }
    }

    private func shard(_ i: Int) throws -> ShardFile {
        if let f = open[i] { return f }
        // Keep at most a few shards mapped: a batch may span two.
        if open.count >= 3 { open.removeAll() }
        let f = try ShardFile(url: folder.appendingPathComponent(files[i]), expected: counts[i])
        open[i] = f
        return f
    }

    /// The instance at `position` of `epoch`'s order (the shards shuffled, then the instances
    /// within each), with its index over all the shards.
    public func instance(epoch: Int, position: Int) throws -> (index: Int, instance: PretrainingInstance) {
        if order?.epoch != epoch {
            order = (epoch, seededPermutation(files.count, seed: Seeds.instanceOrder(seed, epoch: epoch)))
        }
        var p = position
        for s in order!.shards {
            if p < counts[s] {
                if within[s]?.epoch != epoch {
                    if within.count >= 3 { within.removeAll() }
                    within[s] = (
                        epoch, seededPermutation(counts[s], seed: Seeds.orderWithinShard(seed, epoch: epoch, shard: s))
                    )
                }
                let local = within[s]!.order[p]
                return (bases[s] + local, try shard(s).instance(local, vocabularySize: vocabularySize))
            }
            p -= counts[s]
        }
        throw BertError.invalidInput("instance position \(position) is past the \(count) instances")
    }

    /// The held-out instances (at most `limit`).
    public func heldOut(limit: Int) throws -> [PretrainingInstance] {
        if heldOutCount == 0 { return [] }
        let f = try ShardFile(url: folder.appendingPathComponent(heldOutFile), expected: heldOutCount)
        return try (0..<min(limit, heldOutCount)).map { try f.instance($0, vocabularySize: vocabularySize) }
    }
}
