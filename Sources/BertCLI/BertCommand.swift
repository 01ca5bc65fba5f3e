import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

@main
struct Bert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bert",
        abstract: "BERT in Swift: tokenize, learn vocabularies, embed sentences, inspect and count models.",
        subcommands: [
            Tokenize.self, LearnVocab.self, Embed.self, Params.self, Inspect.self, InitModel.self, Pretrain.self,
            PrepareData.self, FillMask.self, FineTune.self, Predict.self, Evaluate.self, Features.self, Convert.self,
            Quantize.self, Serve.self,
        ])

    static func main() {
        main(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
    }
}

/// `--layers -1,-2` as `--layers=-1,-2`: the argument parser reads a word that starts with "-"
/// as an option, so a negative value after its option's name would be "missing". A word that is
/// a negative number (or a list starting with one) after a `--name` is that option's value.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var result: [String] = []
    var i = 0
    while i < arguments.count {
        let word = arguments[i]
        if word.hasPrefix("--"), word.count > 2, !word.contains("="), i + 1 < arguments.count,
            isNegativeValue(arguments[i + 1])
        {
            result.append(word + "=" + arguments[i + 1])
            i += 2
        } else {
            result.append(word)
            i += 1
        }
    }
    return result
}

private func isNegativeValue(_ word: String) -> Bool {
    let bytes = Array(word.utf8)
    guard bytes.count >= 2, bytes[0] == UInt8(ascii: "-"), (0x30...0x39).contains(bytes[1]) || bytes[1] == 0x2E
    else { return false }
    return bytes.allSatisfy { (0x30...0x39).contains($0) || [0x2C, 0x2D, 0x2E, 0x65, 0x45, 0x2B].contains($0) }
}
