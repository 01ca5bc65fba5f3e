import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert params`: the parameter count by component.
struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameter count by component, from a model folder, a config.json or a preset.")

    @Option(
        help:
            "A model folder: counts the tensors of its weights (and checks them against config.json), or a Hugging Face model id (ORG/NAME)."
    )
    var model: String?
    @OptionGroup var hub: RevisionOption
    @Option(help: "A config.json: counts the BertModel (with pooler) it describes.")
    var config: String?
    @Option(help: "A preset: \(BertConfig.presetNames.joined(separator: ", ")).")
    var preset: String?
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if [model, config, preset].compactMap({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --model, --config, --preset")
        }
    }

    func run() throws {
        let breakdown: ParameterBreakdown
        var title: String
        if let model {
            let folder = try hub.folder(model)
            let file = try ModelWeights.open(in: folder)
            breakdown = ParameterBreakdown(file: file)
            title = "\(model)/\(ModelWeights.file(in: folder)?.lastPathComponent ?? "weights")"
            if let cfg = try? BertConfig(contentsOf: folder.appendingPathComponent("config.json")) {
                let fromConfig = ParameterBreakdown(
                    config: cfg,
                    pooler: file.info("pooler.dense.weight") != nil
                        || file.info("bert.pooler.dense.weight") != nil)
                let encoderTotal = breakdown.entries.filter { !$0.component.contains("head") }.reduce(0) {
                    $0 + $1.count
                }
                if encoderTotal != fromConfig.total {
                    warn(
                        "warning: the checkpoint's encoder has \(encoderTotal) parameters but config.json describes "
                            + "\(fromConfig.total)"
                    )
                }
            }
        } else if let config {
            breakdown = ParameterBreakdown(config: try BertConfig(contentsOf: URL(fileURLWithPath: config)))
            title = config
        } else {
            let cfg = try BertConfig.preset(preset!)
            breakdown = ParameterBreakdown(config: cfg)
            title =
                "preset \(preset!): \(cfg.numHiddenLayers) layers, hidden \(cfg.hiddenSize), "
                + "\(cfg.numAttentionHeads) heads, feed-forward \(cfg.intermediateSize), vocabulary "
                + "\(cfg.vocabSize)"
        }
        if json {
            let object: [String: Any] = [
                "source": title, "total": breakdown.total, "layers": breakdown.layers,
                "components": breakdown.entries.map {
                    ["component": $0.component, "parameters": $0.count, "tensors": $0.tensors]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(title)
            print(breakdown.table())
        }
    }
}
