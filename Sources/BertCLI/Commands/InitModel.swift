import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// `bert init`: a randomly initialised model folder (BERT's initialisation), e.g. to check that
/// transformers loads what we write.
struct InitModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised BertModel (config.json + model.safetensors) to a folder.")

    @Option(help: "A preset: \(BertConfig.presetNames.joined(separator: ", ")).")
    var preset: String?
    @Option(help: "A config.json.")
    var config: String?
    @Option(help: "Output folder.")
    var out: String
    @Option(help: "Random seed.")
    var seed: UInt64 = 0
    @Option(help: "A vocab.txt to copy into the folder (its size sets vocab_size).")
    var vocab: String?
    @Flag(help: "Replace an output folder that holds something.") var overwrite = false

    func validate() throws {
        if (preset == nil) == (config == nil) { throw ValidationError("give exactly one of --preset, --config") }
    }

    func run() throws {
        var cfg = try preset.map { try BertConfig.preset($0) } ?? BertConfig(contentsOf: URL(fileURLWithPath: config!))
        let output = try OutputFolder(
            URL(fileURLWithPath: out), overwrite: overwrite,
            inputs: [vocab, config].compactMap { $0.map { URL(fileURLWithPath: $0) } })
        // Read as the tokenizer reads it (LF or CRLF, a BOM dropped), so vocab_size counts its tokens.
        let vocabulary = try vocab.map { try Vocabulary(contentsOf: URL(fileURLWithPath: $0)) }
        // The folder must be usable: its vocabulary has to make a tokenizer ([UNK], [CLS], [SEP]).
        if let vocabulary { _ = try BertTokenizer(vocabulary: vocabulary) }
        if let vocabulary { cfg.vocabSize = vocabulary.count }
        let model = try BertModel(config: cfg)
        model.initializeWeights(seed: seed)
        try output.replace { folder in
            try model.save(to: folder)
            try vocabulary?.write(to: folder.appendingPathComponent("vocab.txt"))
        }
        print("wrote \(output.url.path): \(model.parameterCount) parameters")
    }
}
