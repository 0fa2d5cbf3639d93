from mechscope.cli import main

main()
