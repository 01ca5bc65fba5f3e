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

    func validate() throws {
        if (preset == nil) == (config == nil) { throw ValidationError("give exactly one of --preset, --config") }
    }

    func run() throws {
        var cfg = try preset.map { try BertConfig.preset($0) } ?? BertConfig(contentsOf: URL(fileURLWithPath: config!))
        let folder = URL(fileURLWithPath: out)
        if let vocab {
            let text = try String(contentsOf: URL(fileURLWithPath: vocab), encoding: .utf8)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            cfg.vocabSize = lines.count
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: folder.appendingPathComponent("vocab.txt"), options: .atomic)
        }
        let model = try BertModel(config: cfg)
        model.initializeWeights(seed: seed)
        try model.save(to: folder)
        print("wrote \(folder.path): \(model.parameterCount) parameters")
    }
}
