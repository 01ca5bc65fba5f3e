import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// `bert prepare-data`: the corpus as pretraining shards on disk (for `bert pretrain --data`).
struct PrepareData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare-data",
        abstract: "Turn raw documents into pretraining instances in shard files (streamed: any corpus size).",
        discussion: """
            Instances follow create_pretraining_data.py (target length with short_seq_prob, IsNext \
            or a random span of another document, the longer side truncated at random); each goes \
            to a random shard. Masks are made during training from the seed and the instance. \
            The folder gets shard-NNNNN.bin, heldout.bin, vocab.txt and manifest.json (written \
            last). The same seed gives the same shards.
            """)

    @Option(parsing: .upToNextOption, help: "Corpus files.") var corpus: [String]
    @Option(help: "A vocab.txt.") var vocab: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Maximum sequence length of an instance.") var seqLen = 128
    @Option(help: "Probability of a shorter target length.") var shortSeqProb = 0.1
    @Option(help: "Times the corpus is turned into instances.") var dupeFactor = 1
    @Option(help: "Number of shard files.") var shards = 16
    @Option(help: "Random seed.") var seed: UInt64 = 12345
    @Option(help: "Documents held out for evaluation: every Nth document of the corpus...") var heldOutEvery = 100
    @Option(help: "...at most this many.") var heldOut = 64
    @Flag(help: "Split each line into sentences (paragraph input).") var splitSentences = false
    @Flag(help: "Keep case (no lowercasing or accent stripping).") var cased = false
    @Flag(help: "Replace an output folder that holds something.") var overwrite = false

    func validate() throws {
        if heldOutEvery < 1 || heldOut < 0 {
            throw ValidationError("--held-out-every must be at least 1 and --held-out 0 or more")
        }
        if seqLen < 8 || seqLen > 65535 { throw ValidationError("--seq-len must be between 8 and 65535") }
        if shards < 1 || shards > 65536 { throw ValidationError("--shards must be between 1 and 65536") }
        if !(1...1000).contains(dupeFactor) { throw ValidationError("--dupe-factor must be between 1 and 1000") }
        if !(0...1).contains(shortSeqProb) { throw ValidationError("--short-seq-prob must be between 0 and 1") }
    }

    func run() throws {
        let files = corpus.map { URL(fileURLWithPath: $0) }
        for f in files where !FileManager.default.fileExists(atPath: f.path) {
            throw CLIError("\(f.path): file not found")
        }
        let tokenizer = try BertTokenizer(vocabFile: URL(fileURLWithPath: vocab), normalizer: cased ? .cased : .uncased)
        var options = ShardOptions()
        options.data.maxSeqLength = seqLen
        options.data.shortSeqProb = shortSeqProb
        options.seed = seed
        options.dupeFactor = dupeFactor
        options.shardCount = shards
        options.heldOutDocuments = heldOut
        options.heldOutEvery = heldOutEvery
        options.splitSentences = splitSentences
        // Written whole to a temporary sibling, then renamed: a failed preparation leaves no half folder.
        let output = try OutputFolder(
            URL(fileURLWithPath: out), overwrite: overwrite, inputs: files + [URL(fileURLWithPath: vocab)])
        var report = ""
        try output.replace { folder in
            let set = try prepareShards(files: files, tokenizer: tokenizer, options: options, folder: folder)
            report =
                "\(set.documents) documents, \(set.count) training instances in \(shards) shards, "
                + "\(set.heldOutCount) held out"
        }
        warn("wrote \(out): \(report)")
    }
}

/// Streams the corpus into shards, saying how far it got.
func prepareShards(files: [URL], tokenizer: BertTokenizer, options: ShardOptions, folder: URL) throws
    -> PretrainingShardSet
{
    warn("streaming the corpus into \(options.shardCount) shards in \(folder.path)")
    let set = try preparePretrainingShards(files: files, tokenizer: tokenizer, options: options, folder: folder) {
        documents, instances in
        warn("  \(documents) documents, \(instances) instances")
    }
    try? FileManager.default.removeItem(at: folder.appendingPathComponent("vocab.txt"))
    try tokenizer.vocabulary.write(to: folder.appendingPathComponent("vocab.txt"))
    return set

}
