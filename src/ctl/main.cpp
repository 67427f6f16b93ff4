// gitopperctl: not implemented yet.

#include <cstdio>

int main()
{
    std::fputs("gitopperctl: not yet implemented\n", stderr);
    return 1;
}
