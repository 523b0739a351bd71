/* Compiled with -include <schema>.kivis.h: the header alone must be clean. */
int main(void)
{
    return 0;
}
