from fairlatent.cli import main

main()
