from emblens.frontends.cli import main

main()
