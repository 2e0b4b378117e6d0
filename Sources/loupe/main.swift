import Foundation
import LoupeCLI

exit(LoupeCLI.run(Array(CommandLine.arguments.dropFirst())))
