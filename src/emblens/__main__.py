from emblens.cli import main

main()
