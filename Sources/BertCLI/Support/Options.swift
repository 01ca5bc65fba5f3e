import ArgumentParser
import Bert
import BertCompute
import BertHub
import BertTokenizer
import Foundation

/// The column options shared by finetune, predict and evaluate.
struct ColumnOptions: ParsableArguments {
    @Option(help: "Column of the text (CSV/TSV header or JSON key).") var textColumn = "text"
    @Option(help: "Column of the second text of a pair (default text_pair; absent: single sentences).")
    var pairColumn: String?
    @Option(help: "Column of the label.") var labelColumn = "label"

    var names: ColumnNames {
        var c = ColumnNames()
        c.text = textColumn
        c.textPair = pairColumn ?? "text_pair"
        c.requirePair = pairColumn != nil
        c.label = labelColumn
        return c
    }
}

/// --threads, shared by the commands that compute: at least 1, applied to `Compute.threads`.
struct ThreadOption: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).") var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if let t = threads, t > Compute.maxThreads {
            throw ValidationError(
                "--threads \(t) is more than \(Compute.maxThreads) (four per core on this machine's "
                    + "\(ProcessInfo.processInfo.activeProcessorCount) cores)")
        }
    }

    func apply() {
        if let threads { Compute.threads = threads }
    }
}

/// What `bert finetune --task` trains.
enum FineTuneTask: String, ExpressibleByArgument, CaseIterable {
    case classify, regress, tag, qa, choice
}

// The library's option enums, as argument values (their raw values are the option spellings).
extension Pooling: ExpressibleByArgument {}
extension LayerCombination: ExpressibleByArgument {}
extension MergeScoring: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// --precision, shared by the commands that run a model: the number format of the encoder's
/// matrix products.
struct PrecisionOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Number format of the encoder's matrix products: fp32 (transformers' results), bf16 or int8 "
                + "(faster, close to fp32: see the README's Precision section).")
    )
    var precision: Precision = .fp32
}

/// --revision, beside every --model: a model folder, or a hub id resolved in the Hugging Face
/// cache (and downloaded into it when missing and HF_HUB_OFFLINE is not set).
struct RevisionOption: ParsableArguments {
    @Option(help: "With a hub id as --model: the branch, tag or commit (default: main).") var revision: String?

    /// The folder `model` names: itself, or the cached snapshot of a hub id.
    func folder(_ model: String, files: Hub.Files = .model) throws -> URL {
        try Hub.modelFolder(model, revision: revision, files: files)
    }
}
